"""Wire formats shared by the simulator and the platform plugins."""
