"""Names shared by the domain (bot/domain) and the custom actions; tests use them too."""

from __future__ import annotations

# Intents
GREET = "greet"
GOODBYE = "goodbye"
THANK = "thank"
AFFIRM = "affirm"
DENY = "deny"
BOT_CHALLENGE = "bot_challenge"
ASK_QUESTION = "ask_question"
GIVE_FEEDBACK = "give_feedback"
SUGGEST_IDEA = "suggest_idea"
REPORT_PROBLEM = "report_problem"
REQUEST_HUMAN = "request_human"
REQUEST_DEMO = "request_demo"
ASK_PRICING = "ask_pricing"
OUT_OF_SCOPE = "out_of_scope"
NLU_FALLBACK = "nlu_fallback"
STOP = "stop"  # leave a form ("never mind", "cancel")
CORRECT_FIELD = "correct_field"  # change one answer of the sales form
INFORM = "inform"  # a plain answer to a form question ("This quarter", "IT admin")
LINK_ACCOUNT = "link_account"  # "I already have an account": confirm an e-mail to join channels
RATE_RECOMMENDATION = "rate_recommendation"  # an answer to "how likely are you to recommend us?"
REFER_COLLEAGUE = "refer_colleague"
REQUEST_MY_DATA = "request_my_data"  # "what do you know about me"
REQUEST_ERASURE = "request_erasure"  # "delete my data"
RATE_CSAT = "rate_csat"  # an answer to "how happy are you with the help you got?" after a person helped

# Entities
FAQ_ID = "faq_id"  # set by "did you mean" buttons
FIELD = "field"  # which lead field to correct
RECOMMENDATION_SCORE = "recommendation_score"  # 0-10, from the question's buttons or words
CSAT_SCORE = "csat_score"  # 1-5, from the satisfaction question's buttons (console/handover/views.py)

# Forms
IDEA_FORM = "idea_form"
PROBLEM_FORM = "problem_form"
SALES_FORM = "sales_form"
LINK_FORM = "link_form"
REFERRAL_FORM = "referral_form"
HANDOVER_CONTACT_FORM = "handover_contact_form"  # no one is available: how to reach the customer

# Slots filled by the forms
IDEA_SUMMARY = "idea_summary"
IDEA_BENEFIT = "idea_benefit"
PROBLEM_DESCRIPTION = "problem_description"
PROBLEM_LOCATION = "problem_location"
LEAD_NAME = "lead_name"
LEAD_EMAIL = "lead_email"
LEAD_COMPANY = "lead_company"
LEAD_ROLE = "lead_role"
LEAD_NEED = "lead_need"
LEAD_TIMELINE = "lead_timeline"
LEAD_BUDGET = "lead_budget"
LINK_EMAIL = "link_email"
LINK_CODE = "link_code"
RECOMMENDATION_ASKED = "recommendation_asked"
REFERRAL_EMAIL = "referral_email"
HANDOVER_CONTACT = "handover_contact"  # an e-mail address or phone number, or "none"

IDEA_SLOTS = (IDEA_SUMMARY, IDEA_BENEFIT)
PROBLEM_SLOTS = (PROBLEM_DESCRIPTION, PROBLEM_LOCATION)
LINK_SLOTS = (LINK_EMAIL, LINK_CODE)
LEAD_SLOTS = (LEAD_NAME, LEAD_EMAIL, LEAD_COMPANY, LEAD_ROLE, LEAD_NEED, LEAD_TIMELINE, LEAD_BUDGET)

# Custom actions
ACTION_ANSWER_FAQ = "action_answer_faq"
ACTION_CAPTURE_FEEDBACK = "action_capture_feedback"
ACTION_SUBMIT_IDEA = "action_submit_idea"
ACTION_SUBMIT_PROBLEM = "action_submit_problem"
ACTION_SUBMIT_LEAD = "action_submit_lead"
ACTION_ASK_LEAD_BUDGET = "action_ask_lead_budget"
ACTION_REQUEST_HANDOVER = "action_request_handover"
ACTION_FALLBACK = "action_fallback"
ACTION_CORRECT_LEAD = "action_correct_lead"
ACTION_LINK_ACCOUNT = "action_link_account"
ACTION_THANK = "action_thank"
ACTION_RECORD_RECOMMENDATION = "action_record_recommendation"
ACTION_RECORD_CSAT = "action_record_csat"
ACTION_SAVE_HANDOVER_CONTACT = "action_save_handover_contact"
VALIDATE_HANDOVER_CONTACT_FORM = "validate_handover_contact_form"
ACTION_SUBMIT_REFERRAL = "action_submit_referral"
ACTION_DESCRIBE_MY_DATA = "action_describe_my_data"
ACTION_CONFIRM_ERASURE = "action_confirm_erasure"
ACTION_ERASE_MY_DATA = "action_erase_my_data"
VALIDATE_IDEA_FORM = "validate_idea_form"
VALIDATE_LINK_FORM = "validate_link_form"
VALIDATE_PROBLEM_FORM = "validate_problem_form"
VALIDATE_REFERRAL_FORM = "validate_referral_form"
VALIDATE_SALES_FORM = "validate_sales_form"

# In-use context keys carried in message metadata (portal, web chat).
CONTEXT_KEYS = ("product", "feature", "page", "app_version")

# Idea themes in the conversation (issue 11): "others have asked for ... too", "it's something
# else", and whether the customer wants to hear back when it ships.
IDEA_SOMETHING_ELSE = "idea_something_else"
IDEA_UPDATES_ASKED = "idea_updates_asked"
IDEA_THEME_OFFERED = "idea_theme_offered"
IDEA_EVENT = "idea_event"
ACTION_IDEA_UPDATES = "action_idea_updates"
ACTION_IDEA_SEPARATE = "action_idea_separate"
