from tests.testbed.host import ROOT  # the test bed itself: allowed
from tests.unit.apps.device_agent import test_pipeline  # a test area: refused

RIG = (ROOT, test_pipeline)
