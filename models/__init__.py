"""The Fashion-MNIST CNN: feature keys, Transform preprocessing, Keras model, export."""
