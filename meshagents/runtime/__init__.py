"""The registry runtime: the catalog (index, load, call with telemetry), the CLI, the app
launcher and the doctor. It finds functions and apps through the catalog and app.md files,
never by importing them."""
