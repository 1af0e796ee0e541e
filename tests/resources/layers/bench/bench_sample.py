from tests.integration.apps.wg_hub.conftest import hub_rig  # a conftest: refused
from tests.testbed.hub_rig import hub_rig_cm  # the test bed: allowed

RIG = (hub_rig, hub_rig_cm)
