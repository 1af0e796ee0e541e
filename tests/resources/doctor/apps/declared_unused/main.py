print("nothing called")
