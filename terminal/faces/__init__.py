"""Faces in the terminal: configuration, enrolment, the verifier the flows call, calibration,
and the ``ykt faces`` commands."""
