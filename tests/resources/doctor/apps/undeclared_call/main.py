from meshagents.api import call

call("demo_echo", text="hi")
