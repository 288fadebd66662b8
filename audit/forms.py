from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from audit.models import AuditAction, AuditExport, AuditOutcome
from audit.selectors import EventFilters


class DateInput(forms.DateInput):
    input_type = "date"


class EventFilterForm(forms.Form):
    date_from = forms.DateField(label=_("From"), required=False, widget=DateInput)
    date_to = forms.DateField(label=_("To"), required=False, widget=DateInput)
    actor = forms.CharField(label=_("Actor"), required=False, max_length=150)
    action = forms.ChoiceField(label=_("Action"), required=False)
    target_type = forms.CharField(label=_("Target type"), required=False, max_length=64)
    target_id = forms.CharField(label=_("Target id"), required=False, max_length=255)
    outcome = forms.ChoiceField(label=_("Outcome"), required=False)
    q = forms.CharField(label=_("Search in details"), required=False, max_length=200)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        any_choice = [("", _("Any"))]
        self.fields["action"].choices = any_choice + list(AuditAction.choices)
        self.fields["outcome"].choices = any_choice + list(AuditOutcome.choices)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_to"] < data["date_from"]:
            raise forms.ValidationError(_("The period ends before it starts."))
        return data

    def filters(self) -> EventFilters:
        return EventFilters.from_dict(self.cleaned_data)


class ExportForm(forms.Form):
    format = forms.ChoiceField(label=_("Format"), choices=AuditExport.Format.choices)


class ReportForm(forms.Form):
    period_start = forms.DateField(label=_("From"), widget=DateInput)
    period_end = forms.DateField(label=_("To"), widget=DateInput)
    language = forms.ChoiceField(label=_("Language"), choices=settings.LANGUAGES)
