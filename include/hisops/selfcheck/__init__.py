"""自检 self-check: can hisops reach every database and host of the inventory?"""
