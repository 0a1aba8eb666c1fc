"""What a CRM receives for a qualified customer: pure functions of the customer's record."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

# HubSpot's internal values (lifecyclestage, hs_lead_status), by funnel stage.
HUBSPOT_LIFECYCLE = {"suspect": "subscriber", "prospect": "marketingqualifiedlead", "lead": "salesqualifiedlead", "opportunity": "opportunity"}
HUBSPOT_LEAD_STATUS = {"suspect": "NEW", "prospect": "NEW", "lead": "OPEN", "opportunity": "OPEN_DEAL"}
NO_COMPANY = "[not provided]"  # Salesforce requires Company on a Lead


def answers(record: Dict[str, Any]) -> Dict[str, str]:
    """The sales-form answers by field name without the `lead_` prefix (normalised values)."""
    return {name.replace("lead_", "", 1): str(item.get("value") or "") for name, item in (record.get("lead") or {}).items()}


def said(record: Dict[str, Any]) -> Dict[str, str]:
    """What the customer actually said, where it differs from the normalised value."""
    return {
        name.replace("lead_", "", 1): str(item["said"])
        for name, item in (record.get("lead") or {}).items()
        if item.get("said") and item.get("said") != item.get("value")
    }


def split_name(full: str) -> Tuple[str, str]:
    parts = full.split()
    if not parts:
        return "", ""
    return (" ".join(parts[:-1]), parts[-1]) if len(parts) > 1 else ("", parts[0])


def summary(record: Dict[str, Any]) -> str:
    """A few lines a salesperson reads first: need, timeline, budget (in the customer's words), why now."""
    lead, words = answers(record), said(record)
    funnel = record.get("funnel") or {}
    lines = [f"Engage customer {record['customer_id']}: {funnel.get('stage', 'visitor')}"]
    for key, label in (("need", "Need"), ("timeline", "Timeline"), ("budget", "Budget"), ("role", "Role")):
        if lead.get(key):
            lines.append(f"{label}: {lead[key]}" + (f' (said: "{words[key]}")' if key in words else ""))
    history = funnel.get("history") or []
    if history:
        lines.append(f"Why now: {history[-1]['reason']}")
    fit = (funnel.get("fit") or {}).get("score")
    lines.append(f"Fit {fit:g}/100, engagement {funnel.get('engagement', 0):.1f}" if fit is not None else "")
    return "\n".join(line for line in lines if line)


def email_of(record: Dict[str, Any]) -> Optional[str]:
    value = answers(record).get("email")
    if value:
        return value
    for identity in record.get("identities") or []:
        if identity.startswith("email:"):
            return identity.split(":", 1)[1]
    return None


def hubspot_input(record: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """One input of a contacts batch upsert (idProperty email), or None when there is no e-mail to key it by."""
    email = email_of(record)
    if not email:
        return None
    lead, funnel = answers(record), record.get("funnel") or {}
    first, last = split_name(lead.get("name", ""))
    stage = funnel.get("stage", "visitor")
    properties = {
        "email": email,
        "firstname": first,
        "lastname": last,
        "company": lead.get("company", ""),
        "jobtitle": lead.get("role", ""),
        "lifecyclestage": HUBSPOT_LIFECYCLE.get(stage, "lead"),
        "hs_lead_status": HUBSPOT_LEAD_STATUS.get(stage, "NEW"),
        # Custom contact properties (create them once in HubSpot, type number / single-line text).
        "engage_customer_id": record["customer_id"],
        "engage_fit_score": str((funnel.get("fit") or {}).get("score", 0)),
        "engage_engagement_score": f"{funnel.get('engagement', 0):.1f}",
        "engage_summary": summary(record),
    }
    return {"idProperty": "email", "id": email, "properties": {k: v for k, v in properties.items() if v != ""}}


def salesforce_lead(record: Dict[str, Any]) -> Dict[str, Any]:
    """The Lead fields (LastName and Company are required by Salesforce)."""
    lead, funnel = answers(record), record.get("funnel") or {}
    first, last = split_name(lead.get("name", ""))
    fit = float((funnel.get("fit") or {}).get("score", 0))
    fields = {
        "FirstName": first,
        "LastName": last or f"Engage {record['customer_id']}",
        "Company": lead.get("company") or NO_COMPANY,
        "Email": email_of(record) or "",
        "Title": lead.get("role", ""),
        "LeadSource": "Engage assistant",
        "Status": "Working - Contacted" if funnel.get("stage") == "opportunity" else "Open - Not Contacted",
        "Rating": "Hot" if fit >= 75 else "Warm" if fit >= 50 else "Cold",
        "Description": summary(record),
    }
    return {key: value for key, value in fields.items() if value != ""}


def webhook_event(record: Dict[str, Any]) -> Dict[str, Any]:
    """The generic webhook's JSON: the customer, their stage with its history, scores and answers."""
    funnel = record.get("funnel") or {}
    return {
        "type": "lead.qualified",
        "customer_id": record["customer_id"],
        "email": email_of(record),
        "stage": funnel.get("stage"),
        "stage_history": funnel.get("history", []),
        "fit": funnel.get("fit"),
        "engagement": funnel.get("engagement"),
        "answers": answers(record),
        "said": said(record),
        "channels": sorted((record.get("channels") or {}).keys()),
        "summary": summary(record),
    }
