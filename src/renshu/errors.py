"""The errors a user can cause that are renshu's own (the CLI turns each into one line)."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, or not renshu's."""


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or inf loss or gradient; the run stopped at its last good state."""
