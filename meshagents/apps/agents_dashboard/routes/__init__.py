"""The dashboard's routes, one module a panel (``auth``, ``cockpit``, ``mesh``,
``approvals``, ``audit``), each an APIRouter over the shared ``common.Deps``."""
