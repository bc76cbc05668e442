"""Every sentence Telltale writes, in one module, looked up in the message catalogues.

Explanations are built from numbers (component details and signal details); nothing here
decides anything. Every function takes the language to write in (a code such as ``"fr"``
or a :class:`scoring.i18n.Translator` that also carries the workspace's currency and time
zone); the default is English. Message ids are the English sentences
(``scoring/locales/*/LC_MESSAGES/telltale.po``, see ``docs/languages.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from scoring.i18n import DEFAULT_LANGUAGE, Lang, Translator, as_translator
from scoring.labels import Band, ForecastStage, band_name, forecast_name, lifecycle_name

# --------------------------------------------------------------------------- helpers


def _pct(now: float, before: float) -> int:
    return round(abs(now - before) / before * 100) if before else 0


def _updown(t: Translator, pct: float) -> str:
    n = round(pct)
    if n == 0:
        return t.gettext("level")
    if n < 0:
        return t.gettext("down %(pct)s", pct=t.percent(abs(n)))
    return t.gettext("up %(pct)s", pct=t.percent(abs(n)))


def _days(t: Translator, n: int) -> str:
    return t.ngettext("%(count)s day", "%(count)s days", n)


def _join(t: Translator, parts: Sequence[str]) -> str:
    parts = [p for p in parts if p]
    if not parts:
        return ""
    if len(parts) == 1:
        return parts[0]
    return t.pgettext("list", "%(head)s and %(last)s", head=", ".join(parts[:-1]),
                      last=parts[-1])


def _semi(t: Translator) -> str:
    return t.pgettext("list", "; ")


def _money(t: Translator, amount: Any) -> str | None:
    if isinstance(amount, int | float) and not isinstance(amount, bool):
        return t.money(amount)
    return None


def checkpoint_name(checkpoint: int, language: Lang = DEFAULT_LANGUAGE) -> str:
    """The playbook checkpoint a renewal day is (T-90: "value review")."""
    t = as_translator(language)
    if checkpoint == 180:
        return t.pgettext("checkpoint", "health check")
    if checkpoint == 90:
        return t.pgettext("checkpoint", "value review")
    if checkpoint == 60:
        return t.pgettext("checkpoint", "pricing")
    if checkpoint == 30:
        return t.pgettext("checkpoint", "contract")
    return t.pgettext("checkpoint", "checkpoint")


# --------------------------------------------------------------------------- signals


def _power_user_quiet(t: Translator, name: Any, days: int) -> str:
    return t.ngettext("%(name)s, a power user, has been inactive for %(count)s day",
                      "%(name)s, a power user, has been inactive for %(count)s days",
                      days, name=name)


def _seat_drop(t: Translator, previous: Any, current: Any, seats: Any) -> str:
    return t.gettext("seat usage fell %(pct)s (%(previous)s → %(current)s of %(seats)s seats)",
                     pct=t.percent(_pct(current, previous)), previous=previous,
                     current=current, seats=seats)


def signal_text(kind: str, d: dict[str, Any], language: Lang = DEFAULT_LANGUAGE) -> str:
    """The text of one signal from its detail numbers, in ``language`` (default English)."""
    t = as_translator(language)
    if kind == "power_user_inactive":
        return _power_user_quiet(t, d["name"], d["days"])
    if kind.startswith("user_inactive_"):
        return t.ngettext("%(name)s has been inactive for %(count)s day",
                          "%(name)s has been inactive for %(count)s days", d["days"],
                          name=d["name"])
    if kind == "seat_utilisation_drop":
        return _seat_drop(t, d["previous"], d["current"], d["seats"])
    if kind == "core_feature_decline":
        return t.gettext(
            "core-feature use fell %(pct)s (%(previous)s → %(current)s events in 28 days)",
            pct=t.percent(_pct(d["current"], d["previous"])), previous=d["previous"],
            current=d["current"])
    if kind == "ticket_spike":
        return t.gettext("%(count)s support tickets were opened in %(days)s", count=d["count"],
                         days=_days(t, d["days"]))
    if kind == "ticket_open_long":
        return t.gettext("support ticket %(ticket)s has been open for %(days)s",
                         ticket=d["ticket_id"], days=_days(t, d["days"]))
    if kind == "payment_failed":
        amount = _money(t, d.get("amount"))
        if amount is None:
            return t.gettext("a payment failed")
        return t.gettext("a payment of %(amount)s failed", amount=amount)
    if kind == "plan_downgraded":
        if d.get("from") and d.get("to"):
            return t.gettext("the plan was downgraded from %(old)s to %(new)s",
                             old=d["from"], new=d["to"])
        return t.gettext("the plan was downgraded")
    if kind == "seats_reduced":
        return t.gettext("seats were cut from %(old)s to %(new)s", old=d["from"], new=d["to"])
    if kind == "nps_detractor":
        who = d.get("name")
        if who:
            return t.gettext("%(name)s gave an NPS of %(score)s", name=who, score=d["score"])
        return t.gettext("an NPS answer of %(score)s", score=d["score"])
    if kind == "meeting_missed":
        if d.get("kind") == "qbr_skipped":
            return t.gettext("a QBR was skipped")
        return t.gettext("a meeting was missed")
    if kind == "onboarding_milestone_missed":
        return t.gettext(
            "onboarding milestone %(milestone)s is %(late)s overdue (due day %(due)s)",
            milestone=str(d["milestone"]).replace("_", " "), late=_days(t, d["late_days"]),
            due=d["due_days"])
    if kind == "account_inactive":
        return t.gettext("nobody has used the product for %(days)s", days=_days(t, d["days"]))
    if kind == "seat_saturation":
        return t.gettext("%(active)s of %(seats)s seats are in use (%(pct)s) and advanced "
                         "features are being used", active=d["active"], seats=d["seats"],
                         pct=t.percent(d["pct"]))
    if kind == "gated_feature_clicked":
        feats = ", ".join(d.get("features") or [])
        n = d["count"]
        if feats:
            return t.ngettext("users clicked a gated feature (%(features)s)",
                              "users clicked gated features %(count)s times (%(features)s)",
                              n, features=feats)
        return t.ngettext("users clicked a gated feature",
                          "users clicked gated features %(count)s times", n)
    if kind == "upgrade_interest":
        if d.get("count", 1) > 1:
            return t.gettext("users looked at upgrading (%(count)s times)", count=d["count"])
        return t.gettext("users looked at upgrading")
    if kind == "renewal_checkpoint":
        return t.gettext("renewal in %(days)s: T-%(checkpoint)s %(name)s",
                         days=_days(t, d["days_to_renewal"]), checkpoint=d["checkpoint"],
                         name=checkpoint_name(d["checkpoint"], t))
    return kind.replace("_", " ")


def _power_user_back(t: Translator, names: str, n: int) -> str:
    return t.ngettext("%(names)s, a power user, is active again",
                      "%(names)s, power users, are active again", n, names=names)


def _payment_settled(t: Translator) -> str:
    return t.gettext("the failed payment was settled")


def signal_ended_text(kind: str, d: dict[str, Any], language: Lang = DEFAULT_LANGUAGE) -> str:
    """The text of a signal that has just ended, in ``language`` (default English)."""
    t = as_translator(language)
    if kind == "power_user_inactive":
        return _power_user_back(t, d["name"], 1)
    if kind.startswith("user_inactive_"):
        return t.gettext("%(name)s is active again", name=d["name"])
    if kind == "seat_utilisation_drop":
        return t.gettext("seat usage recovered (back near %(previous)s of %(seats)s seats)",
                         previous=d["previous"], seats=d["seats"])
    if kind == "core_feature_decline":
        return t.gettext("core-feature use recovered (back near %(previous)s events in 28 "
                         "days)", previous=d["previous"])
    if kind == "ticket_spike":
        return t.gettext("the support ticket spike is over")
    if kind == "ticket_open_long":
        return t.gettext("support ticket %(ticket)s was closed", ticket=d["ticket_id"])
    if kind == "payment_failed":
        return _payment_settled(t)
    if kind == "plan_downgraded":
        return t.gettext("the plan downgrade is no longer recent")
    if kind == "seats_reduced":
        return t.gettext("the seat reduction is no longer recent")
    if kind == "nps_detractor":
        return t.gettext("the low NPS answer is no longer recent or was improved")
    if kind == "meeting_missed":
        return t.gettext("meetings are back on track")
    if kind == "onboarding_milestone_missed":
        return t.gettext("onboarding milestone %(milestone)s was reached",
                         milestone=str(d["milestone"]).replace("_", " "))
    if kind == "account_inactive":
        return t.gettext("the account is active again")
    if kind == "seat_saturation":
        return t.gettext("seat saturation eased")
    if kind == "gated_feature_clicked":
        return t.gettext("no recent gated-feature clicks")
    if kind == "upgrade_interest":
        return t.gettext("no recent upgrade interest")
    if kind == "renewal_checkpoint":
        return t.gettext("renewal checkpoint T-%(checkpoint)s passed", checkpoint=d["checkpoint"])
    return t.gettext("%(what)s ended", what=kind.replace("_", " "))


def _ago(t: Translator, n: int) -> str:
    if n <= 0:
        return t.gettext("today")
    if n == 1:
        return t.gettext("yesterday")
    return t.ngettext("%(count)s day ago", "%(count)s days ago", n)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _renewal_text(t: Translator, p: Mapping[str, Any], today: int) -> str:
    left = int(p["renewal_day"]) - today
    if left > 0:
        head = t.gettext("Renewal in %(days)s", days=_days(t, left))
    elif left == 0:
        head = t.gettext("Renewal is today")
    else:
        head = t.gettext("Renewal was %(ago)s", ago=_ago(t, -left))
    if p.get("fell_points"):
        n, days = p["fell_points"], p.get("fell_days") or 7
        when = t.gettext("this week") if days == 7 else t.gettext("in %(days)s",
                                                                   days=_days(t, days))
        return t.ngettext("%(head)s and health fell %(count)s point %(when)s",
                          "%(head)s and health fell %(count)s points %(when)s", n,
                          head=head, when=when)
    if p.get("fell_30d"):
        return t.gettext("%(head)s and health fell %(points)s points in 30 days", head=head,
                         points=p["fell_30d"])
    if p.get("forecast") == ForecastStage.AT_RISK:
        return t.gettext("%(head)s and the renewal forecast is at risk (health %(score)s)",
                         head=head, score=p["score"])
    return t.gettext("%(head)s with health at %(score)s (%(band)s)", head=head,
                     score=p["score"], band=band_name(str(p.get("band")), t))


def attention_note(texts: Sequence[str], *, still_needed: bool,
                   language: Lang = DEFAULT_LANGUAGE) -> str:
    """The line a health change adds when the account's attention changed: the reasons
    that appeared or got worse (rendered for the change's day), or that it needs no one
    any more; empty when some reasons ended and others remain."""
    t = as_translator(language)
    if texts:
        return t.gettext("Needs attention: %(reasons)s", reasons=_semi(t).join(texts))
    return "" if still_needed else t.gettext("No longer needs attention")


def _with_when(t: Translator, text: str, when: str) -> str:
    return t.pgettext("when", "%(text)s %(when)s", text=text, when=when)


def attention_text(kind: str, p: Mapping[str, Any], since_day: int, today: int,
                   language: Lang = DEFAULT_LANGUAGE) -> str:
    """One attention reason as a sentence on epoch day ``today``: days are counted from
    ``since_day`` (or the dates in ``p``) to ``today``, so it is right whenever read."""
    t = as_translator(language)
    d = dict(p)
    ago = today - since_day
    if kind == "champion_quiet":
        return t.gettext("%(name)s, a power user, has not been seen for %(days)s",
                         name=d["name"], days=_days(t, ago + 1))
    if kind == "seats_fell":
        return t.gettext("Seat use fell %(pct)s (%(previous)s → %(current)s of %(seats)s "
                         "seats) in 30 days", pct=t.percent(_pct(d["current"], d["previous"])),
                         previous=d["previous"], current=d["current"], seats=d["seats"])
    if kind == "core_usage_fell":
        return t.gettext("Core-feature use fell %(pct)s (%(previous)s → %(current)s events) "
                         "in 28 days", pct=t.percent(_pct(d["current"], d["previous"])),
                         previous=d["previous"], current=d["current"])
    if kind == "health_fell":
        return t.ngettext("Health fell %(count)s point (%(old)s → %(new)s) in %(days)s",
                          "Health fell %(count)s points (%(old)s → %(new)s) in %(days)s",
                          d["points"], old=d["from"], new=d["to"], days=_days(t, d["days"]))
    if kind == "health_at_risk":
        return t.gettext("Health is %(score)s, in the at-risk band", score=d["score"])
    if kind == "renewal_at_risk":
        return _renewal_text(t, d, today)
    if kind == "payment_failed":
        amount = _money(t, d.get("amount"))
        if amount is None:
            return t.gettext("A payment failed %(ago)s", ago=_ago(t, ago))
        return t.gettext("A payment of %(amount)s failed %(ago)s", amount=amount,
                         ago=_ago(t, ago))
    if kind == "plan_downgraded":
        return _with_when(t, _capital(signal_text("plan_downgraded", d, t)), _ago(t, ago))
    if kind == "seats_reduced":
        return t.gettext("Seats were cut %(ago)s, from %(old)s to %(new)s", ago=_ago(t, ago),
                         old=d["from"], new=d["to"])
    if kind == "support_spike":
        return _capital(signal_text("ticket_spike", d, t))
    if kind == "ticket_open_long":
        return t.gettext("Support ticket %(ticket)s has been open for %(days)s",
                         ticket=d["ticket_id"], days=_days(t, ago))
    if kind == "nps_detractor":
        return t.pgettext("when", "%(text)s (%(when)s)",
                          text=_capital(signal_text("nps_detractor", d, t)), when=_ago(t, ago))
    if kind == "meeting_missed":
        return _with_when(t, _capital(signal_text("meeting_missed", d, t)), _ago(t, ago))
    if kind == "onboarding_missed":
        return t.gettext("Onboarding milestone %(milestone)s is %(days)s overdue",
                         milestone=str(d["milestone"]).replace("_", " "),
                         days=_days(t, ago + 1))
    if kind == "account_inactive":
        return t.gettext("Nobody has used the product for %(days)s", days=_days(t, ago + 1))
    if kind == "playbook_step_overdue":
        late = today - int(d["due_day"])
        when = (t.gettext("%(days)s overdue", days=_days(t, late)) if late > 0
                else t.gettext("due today"))
        return t.gettext("Step “%(step)s” of the %(playbook)s playbook is %(when)s",
                         step=d["step"], playbook=d["playbook"], when=when)
    if kind == "seat_saturation":
        return _capital(signal_text("seat_saturation", d, t))
    if kind == "gated_feature":
        feats = [f for f in str(d.get("features") or "").split(", ") if f]
        return _capital(signal_text("gated_feature_clicked", {**d, "features": feats}, t))
    if kind == "upgrade_interest":
        return _capital(signal_text("upgrade_interest", d, t))
    return _capital(kind.replace("_", " "))


def user_gone_text(d: dict[str, Any], days: int, language: Lang = DEFAULT_LANGUAGE) -> str:
    """A quiet person's episode ended because they are no longer counted."""
    return as_translator(language).gettext(
        "%(name)s has been away for %(days)s+ days and is no longer counted",
        name=d["name"], days=days)


# --------------------------------------------------------------------------- components


def component_change_text(
    name: str, prev: dict[str, Any] | None, cur: dict[str, Any], delta: int,
    language: Lang = DEFAULT_LANGUAGE,
) -> str:
    """Why a component moved, from its previous and current detail."""
    t = as_translator(language)
    p = prev or {}
    if name == "active_seats":
        a0, a1, seats = p.get("active"), cur["active"], cur["seats"]
        if a0 is not None and a0 != a1:
            if a0 == 0 or a1 == 0:
                if a1 < a0:
                    return t.gettext("seat usage fell from %(old)s to %(new)s of %(seats)s "
                                     "seats", old=a0, new=a1, seats=seats)
                return t.gettext("seat usage rose from %(old)s to %(new)s of %(seats)s seats",
                                 old=a0, new=a1, seats=seats)
            if a1 < a0:
                return _seat_drop(t, a0, a1, seats)
            return t.gettext("seat usage rose %(pct)s (%(previous)s → %(current)s of "
                             "%(seats)s seats)", pct=t.percent(_pct(a1, a0)), previous=a0,
                             current=a1, seats=seats)
        if p.get("seats") is not None and p["seats"] != seats:
            return t.gettext("%(active)s of %(seats)s seats are active (seats went from "
                             "%(old)s to %(seats)s)", active=a1, seats=seats, old=p["seats"])
        return t.ngettext("%(active)s of %(count)s seat was active in the last 30 days",
                          "%(active)s of %(count)s seats were active in the last 30 days",
                          seats, active=a1)
    if name == "power_users":
        before = {u["user_id"] for u in p.get("inactive", [])}
        newly = [u for u in cur["inactive"] if u["user_id"] not in before]
        now_ids = {u["user_id"] for u in cur["inactive"]}
        back = [u for u in p.get("inactive", []) if u["user_id"] not in now_ids]
        if delta < 0 and newly:
            shown = newly if len(newly) < len(cur["inactive"]) else cur["inactive"]
            return power_users_quiet(shown, t)
        if delta > 0 and back:
            return _power_user_back(t, _join(t, [u["name"] for u in back]), len(back))
        if cur["inactive"]:
            return power_users_quiet(cur["inactive"], t)
        n, act = cur["power_users"], cur["active"]
        if not n:
            recent, users = cur.get("recent", 0), cur.get("users", 0)
            return t.ngettext("%(recent)s of %(count)s user was active in the last 14 days",
                              "%(recent)s of %(count)s users were active in the last 14 days",
                              users, recent=recent)
        if act == 1:
            return t.ngettext("%(active)s of %(count)s power user is active",
                              "%(active)s of %(count)s power users is active", n, active=act)
        return t.ngettext("%(active)s of %(count)s power user are active",
                          "%(active)s of %(count)s power users are active", n, active=act)
    if name == "engagement":
        trend = cur.get("trend_pct")
        level = cur["per_seat_week"]
        # French counts "1,5 point" in the singular (below 2); English always "points"
        base = t.ngettext("weighted engagement is %(level)s points per seat per week",
                          "weighted engagement is %(level)s points per seat per week",
                          int(level), level=level)
        was = p.get("per_seat_week")
        if trend is None:
            if was is not None and was != level:
                return t.gettext("%(text)s (was %(was)s)", text=base, was=was)
            return base
        text = t.gettext("%(base)s, %(trend)s on the 60 days before", base=base,
                         trend=_updown(t, trend))
        t0 = p.get("trend_pct")
        if t0 is not None and round(t0) != round(trend):
            text = t.gettext("%(text)s (was %(was)s)", text=text, was=_updown(t, t0))
        return text
    if name == "core_features":
        c0, c1 = cur["previous_28d"], cur["events_28d"]
        if c0 == 0 and c1 == 0:
            return t.gettext("no core features were used in the last 8 weeks")
        ch = cur.get("change_pct")
        if ch is None:
            return t.ngettext("core features were used once in the last 28 days",
                              "core features were used %(count)s times in the last 28 days",
                              c1)
        ch0 = p.get("change_pct")
        was = (t.gettext("; was %(trend)s", trend=_updown(t, ch0))
               if ch0 is not None and round(ch0) != round(ch) else "")
        return t.gettext("core-feature use is %(trend)s on the 28 days before (%(old)s → "
                         "%(new)s events%(was)s)", trend=_updown(t, ch), old=c0, new=c1,
                         was=was)
    if name == "recency":
        days, quiet = cur["days"], p.get("days")
        if days is None:
            return t.gettext("nobody has used the product yet")
        if quiet is not None and days < quiet and quiet >= 7:
            return t.ngettext("the product was used again after %(count)s quiet day",
                              "the product was used again after %(count)s quiet days",
                              quiet)
        if days == 0:
            return t.gettext("the product was used today")
        return t.ngettext("the product was last used %(count)s day ago",
                          "the product was last used %(count)s days ago", days)
    if name == "habit":
        per_month = cur.get("per_month")
        if per_month is None:
            return t.gettext("nobody has used the product yet")
        earlier = p.get("per_month")
        was = (t.gettext(" (was %(count)s)", count=t.fixed(earlier, 1))
               if earlier is not None and round(earlier, 1) != round(per_month, 1) else "")
        return t.ngettext(
            "the product was used on %(per_month)s days a month over the last %(count)s day"
            "%(was)s",
            "the product was used on %(per_month)s days a month over the last %(count)s days"
            "%(was)s", cur["days"], per_month=t.fixed(per_month, 1), was=was)
    if name == "support":
        parts = []
        if cur.get("spike"):
            parts.append(t.gettext("%(count)s support tickets were opened in 10 days",
                                   count=cur["recent"]))
        if cur["aged"]:
            parts.append(t.ngettext("%(count)s ticket has been open for %(days)s+ days",
                                    "%(count)s tickets have been open for %(days)s+ days",
                                    cur["aged"], days=cur["oldest_days"]))
        if cur.get("low_csat") is not None:
            parts.append(t.gettext("a customer rated support %(rating)s of 5",
                                   rating=int(cur["low_csat"])))
        if parts:
            return _join(t, parts)
        if delta > 0 and p.get("open"):
            return t.gettext("support tickets were resolved (%(old)s → %(new)s open)",
                             old=p["open"], new=cur["open"])
        return t.ngettext("%(count)s support ticket is open", "%(count)s support tickets are open",
                          cur["open"])
    if name == "financial":
        parts = []
        if "payment_failed" in cur:
            parts.append(signal_text("payment_failed", {"amount": cur["payment_failed"]}, t))
        if "downgrade" in cur:
            parts.append(signal_text("plan_downgraded", {"from": cur["downgrade"][0],
                                                         "to": cur["downgrade"][1]}, t))
        if "seat_reduction" in cur:
            parts.append(signal_text("seats_reduced", {"from": cur["seat_reduction"][0],
                                                       "to": cur["seat_reduction"][1]}, t))
        if cur.get("cancelled"):
            parts.append(t.gettext("the subscription was cancelled"))
        if parts:
            return _join(t, parts)
        if "payment_failed" in p:
            return _payment_settled(t)
        return t.gettext("billing is in good standing")
    if name == "relationship":
        parts = []
        n0, n1 = p.get("nps"), cur.get("nps")
        if n1 is not None and n0 != n1:
            parts.append(t.gettext("NPS is %(nps)s", nps=n1) if n0 is None
                         else t.gettext("NPS is %(nps)s (was %(was)s)", nps=n1, was=n0))
        missed = cur["meetings_missed"]
        if missed > p.get("meetings_missed", 0) or (delta < 0 and missed):
            parts.append(t.gettext("a meeting was missed") if missed == 1
                         else t.gettext("%(count)s meetings were missed in 90 days",
                                        count=missed))
        if cur["qbrs_skipped"] > p.get("qbrs_skipped", 0) or (delta < 0 and cur["qbrs_skipped"]):
            parts.append(t.gettext("a QBR was skipped"))
        if parts:
            return _join(t, parts)
        if delta > 0:
            return t.gettext("the relationship improved")
        return t.gettext("the relationship cooled")
    return name.replace("_", " ")


def power_users_quiet(users: list[dict[str, Any]], language: Lang = DEFAULT_LANGUAGE) -> str:
    t = as_translator(language)
    if len(users) == 1:
        u = users[0]
        return _power_user_quiet(t, u["name"], u["days"])
    if len(users) == 2:
        a, b = users
        days = (
            _days(t, a["days"]) if a["days"] == b["days"]
            else t.gettext("%(first)s and %(second)s days", first=a["days"], second=b["days"])
        )
        return t.gettext("%(first)s and %(second)s, power users, have been inactive for "
                         "%(days)s", first=a["name"], second=b["name"], days=days)
    return t.gettext("%(count)s power users have been inactive for %(days)s or more",
                     count=len(users), days=_days(t, users[-1]["days"]))


# --------------------------------------------------------------------------- paragraph


def _week(t: Translator, change_7d: int | None, delta: int) -> str:
    if change_7d is None or change_7d == delta or change_7d == 0:
        return ""
    if change_7d < 0:
        return t.gettext("; down %(points)s in 7 days", points=abs(change_7d))
    return t.gettext("; up %(points)s in 7 days", points=change_7d)


def headline(previous: int | None, current: int, band: str,
             change_7d: int | None = None, language: Lang = DEFAULT_LANGUAGE) -> str:
    t = as_translator(language)
    if previous is None:
        return t.gettext("Health is %(score)s (%(band)s)", score=current,
                         band=band_name(band, t))
    delta = current - previous
    week = _week(t, change_7d, delta)
    if delta < 0:
        return t.ngettext("Health fell %(count)s point (%(previous)s → %(current)s%(week)s)",
                          "Health fell %(count)s points (%(previous)s → %(current)s%(week)s)",
                          -delta, previous=previous, current=current, week=week)
    if delta > 0:
        return t.ngettext("Health rose %(count)s point (%(previous)s → %(current)s%(week)s)",
                          "Health rose %(count)s points (%(previous)s → %(current)s%(week)s)",
                          delta, previous=previous, current=current, week=week)
    return t.gettext("Health held at %(current)s (%(band)s%(week)s)", current=current,
                     band=band_name(band, t), week=week)


def paragraph(
    previous: int | None,
    current: int,
    band: str,
    reasons: Sequence[str],
    started: Sequence[str],
    change_7d: int | None,
    ended: Sequence[str],
    stage_notes: Sequence[str] = (),
    language: Lang = DEFAULT_LANGUAGE,
) -> str:
    """One paragraph: headline, "because" the top reasons, then what started/ended."""
    t = as_translator(language)
    head = headline(previous, current, band, change_7d, t)
    if reasons and previous is None and band == Band.HEALTHY:
        text = t.gettext("%(head)s; room to improve: %(reasons)s.", head=head,
                         reasons=_join(t, list(reasons)))
    elif reasons and previous is None:
        text = t.gettext("%(head)s mainly because %(reasons)s.", head=head,
                         reasons=_join(t, list(reasons)))
    elif reasons:
        text = t.gettext("%(head)s because %(reasons)s.", head=head,
                         reasons=_join(t, list(reasons)))
    else:
        text = t.gettext("%(head)s.", head=head)
    extra = [s for s in started if not any(s in r for r in reasons)]
    if extra:
        text += t.gettext(" New: %(items)s.", items=_capped(t, extra))
    if ended:
        text += t.gettext(" Resolved: %(items)s.", items=_capped(t, list(ended)))
    for note in stage_notes:
        text += t.gettext(" %(note)s.", note=note)
    return text


def _capped(t: Translator, items: list[str], limit: int = 3) -> str:
    if len(items) <= limit:
        return _semi(t).join(items)
    return _semi(t).join(items[:limit]) + t.ngettext(
        "; and %(count)s more", "; and %(count)s more", len(items) - limit)


def band_note(previous: str | None, current: str, language: Lang = DEFAULT_LANGUAGE) -> str:
    if previous is None:
        return ""
    t = as_translator(language)
    return t.gettext("Band moved from %(old)s to %(new)s", old=band_name(previous, t),
                     new=band_name(current, t))


def forecast_note(previous: str | None, current: str | None,
                  language: Lang = DEFAULT_LANGUAGE) -> str:
    t = as_translator(language)
    if current is None:
        return t.gettext("The renewal forecast no longer applies")
    if previous is None:
        return t.gettext("Renewal forecast: %(stage)s", stage=forecast_name(current, t))
    return t.gettext("Renewal forecast moved from %(old)s to %(new)s",
                     old=forecast_name(previous, t), new=forecast_name(current, t))


def lifecycle_note(previous: str | None, current: str,
                   language: Lang = DEFAULT_LANGUAGE) -> str:
    t = as_translator(language)
    if previous is None:
        return t.gettext("The account is %(stage)s", stage=lifecycle_name(current, t))
    return t.gettext("The account is now %(new)s (was %(old)s)",
                     new=lifecycle_name(current, t), old=lifecycle_name(previous, t))


def weakest_text(name: str, cur: dict[str, Any], language: Lang = DEFAULT_LANGUAGE) -> str:
    """Current-state text for a component, for first assessments."""
    return component_change_text(name, None, cur, -1, language)


# --------------------------------------------------------------------------- again


def signal_again(signal: Mapping[str, Any], language: Lang = DEFAULT_LANGUAGE) -> str:
    """A signal of a wire record or document (type, detail, text) in ``language``, said
    again from its numbers; its stored text when those are not what the type needs."""
    detail = signal.get("detail")
    try:
        if isinstance(detail, Mapping):
            return signal_text(str(signal.get("type")), dict(detail), language)
    except (KeyError, TypeError, ValueError):
        pass
    return str(signal.get("text") or signal.get("type") or "")


_QUIET_PREFIX = "user_inactive_"


def _quiet_rank(kind: str) -> int:
    if kind == "power_user_inactive":
        return 10_000
    if kind.startswith(_QUIET_PREFIX) and kind[len(_QUIET_PREFIX):-1].isdigit():
        return int(kind[len(_QUIET_PREFIX):-1])
    return -1


def _worth_saying(signals: Sequence[Mapping[str, Any]], reasons: Sequence[str]
                  ) -> list[Mapping[str, Any]]:
    """As the engine chooses them: one signal per quiet person (the strongest), none for
    people the reasons already name."""
    out: list[Mapping[str, Any]] = []
    strongest: dict[str, Mapping[str, Any]] = {}
    for s in signals:
        kind, subject = str(s.get("type")), s.get("subject")
        rank = _quiet_rank(kind)
        if rank < 0 or subject is None:
            out.append(s)
            continue
        name = str((s.get("detail") or {}).get("name"))
        if any(name in r for r in reasons):
            continue
        cur = strongest.get(str(subject))
        if cur is None or rank > _quiet_rank(str(cur.get("type"))):
            strongest[str(subject)] = s
    out.extend(strongest.values())
    order = {"risk": 0, "expansion": 1, "info": 2}
    return sorted(out, key=lambda s: (order.get(str(s.get("severity")), 3), str(s.get("key"))))


def _ended_again(signal: Mapping[str, Any], t: Translator, forget_days: int) -> str:
    """An ended signal in words; a quiet person whose last count of days had reached the
    forget horizon is no longer counted rather than back."""
    kind, detail = str(signal.get("type")), dict(signal.get("detail") or {})
    days = detail.get("days")
    if (_quiet_rank(kind) >= 0 and isinstance(days, int) and days + 1 >= forget_days):
        return user_gone_text(detail, forget_days, t)
    return signal_ended_text(kind, detail, t)


def retell(record: Mapping[str, Any], language: Lang = DEFAULT_LANGUAGE,
           week_points: int = 10, forget_days: int = 90) -> str:
    """A health change's explanation said again in ``language`` from its structured
    fields: a wire record (``telltale.health-change/1``) or the read model's account
    document. The same sentences as the engine's, but for what the record does not keep:
    a document has neither started nor ended signals nor the attention reasons that were
    new. ``week_points`` and ``forget_days`` are ``decisions.score_move_points`` and
    ``signals.user_forget_days``."""
    t = as_translator(language)
    current = record.get("current") or record
    score, band = int(current["score"]), str(current["band"])
    previous = record.get("previous") or None
    prev_score = int(previous["score"]) if previous else None
    components = current.get("components") or record.get("components") or {}
    drivers = []
    for d in record.get("drivers") or []:
        detail = (components.get(d["component"]) or {}).get("detail")
        if isinstance(detail, Mapping):
            drivers.append(component_change_text(str(d["component"]), d.get("previous"),
                                                 dict(detail), int(d["delta"]), t))
        else:
            drivers.append(str(d.get("text") or ""))
    reasons = set(record.get("reasons") or [])
    notes: list[str] = []
    forecast, life = current.get("forecast"), current.get("lifecycle")
    if previous:
        if "band_changed" in reasons:
            notes.append(band_note(str(previous["band"]), band, t))
        if "forecast_changed" in reasons:
            notes.append(forecast_note(previous.get("forecast"), forecast, t))
        if "lifecycle_changed" in reasons and life:
            notes.append(lifecycle_note(previous.get("lifecycle"), str(life), t))
    elif life:
        notes.append(lifecycle_note(None, str(life), t))
        if forecast is not None:
            notes.append(forecast_note(None, str(forecast), t))
    attention = record.get("attention")
    if reasons == {"attention_changed"} and isinstance(attention, Mapping) and "day" in record:
        new = set(record.get("attention_new") or ())
        shown = [r for r in attention.get("reasons") or [] if r.get("key") in new][:2]
        note = attention_note(
            [attention_text(str(r["type"]), r.get("params") or {}, int(r["since_day"]),
                            int(record["day"]), t) for r in shown],
            still_needed=bool(attention.get("reasons")), language=t)
        if note:
            notes.append(note)
    delta = score - prev_score if prev_score is not None else 0
    change_7d = int(record.get("change_7d") or 0)
    ended = [_ended_again(s, t, forget_days)
             for s in _worth_saying(record.get("signals_ended") or [], drivers)]
    return paragraph(
        prev_score, score, band, drivers if delta != 0 or previous is None else [],
        [signal_again(s, t) for s in _worth_saying(record.get("signals_started") or [],
                                                   drivers)],
        change_7d if abs(change_7d) >= week_points else None,
        [line for line in ended if line not in drivers], notes, t)
