"""The test bed: the demo rig (namespaces, services, clients) and the e2e runner. The
runtime, the libraries, the catalog and the apps never import it."""
