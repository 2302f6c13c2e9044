package main

import (
	"strings"
	"testing"
)

func TestKindOf(t *testing.T) {
	cases := []struct {
		flag, raw string
		want      storeKind
		err       string
	}{
		{"events", "", kindEmbedded, ""},
		{"events", "postgres://kyc@db:5432/kyc", kindPostgres, ""},
		{"read", "postgresql://kyc@db/kyc", kindPostgres, ""},
		{"events", "esdb://localhost:2113?tls=false", kindKurrent, ""},
		{"events", "esdb+discover://admin:changeit@cluster.internal:2113", kindKurrent, ""},
		{"events", "esdb://admin:changeit@node1:2113,node2:2113,node3:2113?nodePreference=leader", kindKurrent, ""},
		{"read", "esdb://localhost:2113", "", "KurrentDB holds events, not read models"},
		{"events", "mysql://db/kyc", "", "unsupported store"},
		{"events", "kyc.db", "", "not a store URL"},
	}
	for _, tc := range cases {
		got, err := kindOf(tc.flag, tc.raw)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("kindOf(%s, %q) = %v, %v; want an error containing %q", tc.flag, tc.raw, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("kindOf(%s, %q) = %v, %v; want %v", tc.flag, tc.raw, got, err, tc.want)
		}
	}
}

func TestRedactHidesPasswords(t *testing.T) {
	for raw, want := range map[string]string{
		"postgres://kyc:secret@db:5432/kyc":                 "postgres://kyc:xxxxx@db:5432/kyc",
		"esdb://admin:changeit@node1:2113,node2:2113?tls=1": "esdb://admin:xxxxx@node1:2113,node2:2113?tls=1",
		"esdb://node1:2113,node2:2113":                      "esdb://node1:2113,node2:2113",
	} {
		if got := redact(raw); got != want || strings.Contains(got, "secret") || strings.Contains(got, "changeit") {
			t.Errorf("redact(%q) = %q, want %q", raw, got, want)
		}
	}
}
