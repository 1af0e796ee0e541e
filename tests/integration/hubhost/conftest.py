from tests.testbed.hubhost import vm_hub  # noqa: F401 - the module-scoped provisioned hub
