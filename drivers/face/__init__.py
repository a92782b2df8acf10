"""Face encoders: detect -> landmarks -> align -> template, behind one interface.

``interface`` holds the types and Protocols (no OpenCV); ``quality`` is the gate a frame must
pass before it is embedded; ``yunet`` (detector and landmark refiner) and ``recognizers`` are
the OpenCV/ONNX parts; ``align`` makes the five-point ArcFace crop; ``ncnn_recognizer`` runs
ArcFace-style models in ncnn format; ``dlib_backend`` wraps dlib's HOG detector and ResNet
through the face-recognition package's model files; ``backends`` builds an encoder from settings
through an explicit mapping.
"""
