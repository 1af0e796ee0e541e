from meshagents import api

api.call("demo_echo", text="hi")
