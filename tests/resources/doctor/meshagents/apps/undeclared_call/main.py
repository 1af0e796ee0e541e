from meshagents.runtime.api import call

call("demo_echo", text="hi")
