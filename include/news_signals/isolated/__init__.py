"""The Hopsworks client in its own interpreter (docs/OPERATIONS.md, "Hopsworks isolation").

hopsworks 5.2.1 pins SQLAlchemy <= 2.0.41 and Airflow 3.2+ needs >= 2.0.48, so every call into
``hopsworks`` / ``hsfs`` / ``hsml`` runs in a separate venv: ``worker.py`` runs there (the existing
``HopsworksRegistry`` / ``HopsworksFeatureStore``), ``proxy.py`` is what the Airflow side uses.
"""
