"""Does the chain learn? A synthetic preference task with a gold rule and the reports of the learn chain."""
