print("acai")
