"""Handing qualified leads to the CRM a sales team already uses: HubSpot, Salesforce or a signed webhook (3.11 runtime only)."""
