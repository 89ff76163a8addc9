"""What frames a run: its settings (config), the records each stage leaves in the store for the next
(records), the plug-in registries, and the name a worker reports to Airflow."""
