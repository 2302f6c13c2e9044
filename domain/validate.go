package domain

import (
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/language"
)

// Limits on free text, so one request cannot bloat a stream.
const (
	maxShortText  = 128
	maxReasonText = 2000
	maxNoteText   = 10000
	maxListItems  = 50
)

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

func isCountry(code string) bool {
	r, err := language.ParseRegion(code)
	return err == nil && r.IsCountry() && r.String() == code
}

func checkCountry(errs *FieldErrors, field, code string, required bool) {
	if code == "" {
		if required {
			errs.add(field, "is required")
		}
		return
	}
	if !isCountry(code) {
		errs.add(field, "%q is not an ISO 3166-1 alpha-2 country code", code)
	}
}

func checkText(errs *FieldErrors, field, s string, required bool, max int) {
	switch {
	case strings.TrimSpace(s) == "":
		if required {
			errs.add(field, "is required")
		}
	case utf8.RuneCountInString(s) > max:
		errs.add(field, "is longer than %d characters", max)
	case !utf8.ValidString(s):
		errs.add(field, "is not valid UTF-8")
	}
}

func checkList(errs *FieldErrors, field string, items []string, max int) {
	if len(items) > maxListItems {
		errs.add(field, "has more than %d items", maxListItems)
		return
	}
	seen := map[string]bool{}
	for i, it := range items {
		checkText(errs, fmt.Sprintf("%s[%d]", field, i), it, true, max)
		if seen[it] {
			errs.add(fmt.Sprintf("%s[%d]", field, i), "%q is listed twice", it)
		}
		seen[it] = true
	}
}

func checkDate(errs *FieldErrors, field, s string, now time.Time, past bool) {
	if s == "" {
		return
	}
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		errs.add(field, "%q is not an ISO 8601 date (YYYY-MM-DD)", s)
		return
	}
	if past && (d.After(now) || now.Year()-d.Year() > 150) {
		errs.add(field, "%q is not a plausible birth date", s)
	}
}

func checkEmails(errs *FieldErrors, field string, emails []string) {
	checkList(errs, field, emails, 254)
	for i, e := range emails {
		if a, err := mail.ParseAddress(e); err != nil || a.Address != e {
			errs.add(fmt.Sprintf("%s[%d]", field, i), "%q is not an email address", e)
		}
	}
}

func checkPhones(errs *FieldErrors, field string, phones []string) {
	checkList(errs, field, phones, 16)
	for i, p := range phones {
		if !e164.MatchString(p) {
			errs.add(fmt.Sprintf("%s[%d]", field, i), "%q is not an E.164 phone number (+ and 7 to 15 digits)", p)
		}
	}
}

func checkName(errs *FieldErrors, field string, n *Name, required bool) {
	if n == nil {
		if required {
			errs.add(field, "is required")
		}
		return
	}
	checkText(errs, field+".first", n.First, true, maxShortText)
	checkText(errs, field+".last", n.Last, true, maxShortText)
}

func checkAddress(errs *FieldErrors, field string, a *Address) {
	if a == nil {
		return
	}
	checkCountry(errs, field+".country", a.Country, true)
	checkText(errs, field+".city", a.City, false, maxShortText)
	if len(a.Lines) > 5 {
		errs.add(field+".lines", "has more than 5 lines")
	}
	for i, l := range a.Lines {
		checkText(errs, fmt.Sprintf("%s.lines[%d]", field, i), l, true, 256)
	}
}

func checkLanguage(errs *FieldErrors, field, s string) {
	if s == "" {
		return
	}
	if _, err := language.Parse(s); err != nil || len(s) > 35 {
		errs.add(field, "%q is not a BCP 47 language tag", s)
	}
}

func checkOneOf(errs *FieldErrors, field, v string, allowed []string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	errs.add(field, "%q is not one of %s", v, strings.Join(allowed, ", "))
}

func checkServices(errs *FieldErrors, field string, services []string) {
	checkList(errs, field, services, maxShortText)
	for i, s := range services {
		checkOneOf(errs, fmt.Sprintf("%s[%d]", field, i), s, Services)
	}
}
