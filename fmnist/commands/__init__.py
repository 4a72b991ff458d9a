"""One module per `fmnist` subcommand: each declares its flags, builds typed
configs from them (fmnist/options.py) and calls library functions.

Heavy library modules (TFX, TensorFlow, TFDV) are imported when a command
runs, not when the parser is built, so `fmnist --help` stays fast.
"""
