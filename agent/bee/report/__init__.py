"""`bee report`: many nodes' audit documents side by side, and what differs from the majority.

`load` reads the files (skipping, with a reason, what is not a bee audit), `fields` turns one
document into the row a node gets, `compare` finds the majority of each field, and `html` and
`text` render the result.
"""
