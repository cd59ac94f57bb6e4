"""Numbers in answers and pages: `quantity` reads a number as written (value, precision, unit
marks), `groups` finds the numbers that belong together on a page (table rows, table columns,
sentences), `derivation` searches the one arithmetic step that derives an answer's number from
the page numbers, and `written` checks arithmetic that an answer writes out ("a - b = c").
"""
