"""complyray's Ray Serve application, `serve.app:build_app`: an HTTP ingress in front of Detector replicas.

Modules: config (ServeAppConfig), schemas (API bodies), replica (the model deployment), app (ingress and
builder), auth, audit. Importing any of them starts nothing and loads no model.
"""
