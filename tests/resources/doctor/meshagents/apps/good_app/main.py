from meshagents.runtime import api

api.call("demo_echo", text="hi")
