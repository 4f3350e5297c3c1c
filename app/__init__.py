"""CareLoop: proactive customer care for Shopify stores. Importing the package
imports nothing else: each process builds what it needs (`app.runtime`)."""
