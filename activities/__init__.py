"""Activities: the only code with I/O. Each group is a class handed its clients, registered
as bound methods (see ``build_activities``)."""
