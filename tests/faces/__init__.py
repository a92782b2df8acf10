"""Faces: matcher math, encoders on real photos, quality gate, enrolment, liveness, privacy."""
