"""The ``mongo`` read model: the accounts views on MongoDB (or FerretDB) with Beanie."""
