from meshagents.testbed import demo  # entry -> testbed at import time: refused


def demo_cmd() -> None:
    from meshagents.testbed import demo as lazy_demo  # entry -> testbed inside a function: allowed

    lazy_demo.run()
    demo.run()
