"""placeholder"""
def add_commands(sub, common):
    pass
