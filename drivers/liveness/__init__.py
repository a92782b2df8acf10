"""Liveness (presentation-attack detection): is the face in front of the camera a live person
rather than a photo or a screen? ``interface`` holds the Protocol; ``minifasnet`` is the network
definition and its ONNX export (needs torch, at build time only); ``runner`` runs the exported
models with OpenCV DNN on the terminal."""
