from __future__ import annotations

from django import forms

from analytics.selectors import PERIODS


class DashboardForm(forms.Form):
    team = forms.CharField(required=False, max_length=60)
    period = forms.ChoiceField(choices=[(k, k) for k in PERIODS], required=False, initial="24h")
    bucket = forms.ChoiceField(choices=[("hour", "Hour"), ("day", "Day")], required=False, initial="hour")
    model = forms.CharField(required=False, max_length=80)
    feature = forms.CharField(required=False, max_length=60)


class FeedbackFilterForm(forms.Form):
    team = forms.CharField(required=False, max_length=60)
    feature = forms.CharField(required=False, max_length=60)
    model = forms.CharField(required=False, max_length=80)
    rating = forms.TypedChoiceField(
        choices=[("", "Any"), ("1", "Thumbs up"), ("-1", "Thumbs down")], coerce=int, empty_value=None, required=False
    )
    date_from = forms.DateField(
        required=False,
        label="From",
        help_text="YYYY-MM-DD",
        error_messages={"invalid": "Enter the start date as YYYY-MM-DD."},
    )
    date_to = forms.DateField(
        required=False,
        label="To (inclusive)",
        help_text="YYYY-MM-DD",
        error_messages={"invalid": "Enter the end date as YYYY-MM-DD."},
    )

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:  # type: ignore[operator]
            raise forms.ValidationError("The start date is after the end date.")
        return data
