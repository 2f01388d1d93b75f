"""The suite's fixtures come from django_rb.testing (the pytest11 plugin users get too)."""
