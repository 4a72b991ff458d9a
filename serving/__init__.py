"""The prediction proxy: the pushed model behind TF Serving's and Vertex's APIs.

`app.create_app(config)` builds the ASGI app; `cli.register` adds `fmnist serve`.
"""
