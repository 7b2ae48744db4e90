"""Release management on live nodes: status snapshot, upload, install/rollback state machine."""
