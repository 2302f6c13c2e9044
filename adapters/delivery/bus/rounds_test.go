package bus

import (
	"slices"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
)

func TestPartitionRounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string // messages as key:uuid, space-separated; "-" is no key
		want []string
	}{
		{"empty", "", nil},
		{"one partition goes one per round", "a:1 a:2 a:3", []string{"1", "2", "3"}},
		{"runs of partitions go side by side", "a:1 a:2 a:3 b:4 b:5 c:6", []string{"1 4 6", "2 5", "3"}},
		{"interleaved keep each partition's order", "a:1 b:2 a:3 b:4 a:5", []string{"1 2", "3 4", "5"}},
		{"keyless messages are one partition", "-:1 a:2 -:3", []string{"1 2", "3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var msgs []*message.Message
			for _, f := range strings.Fields(tc.in) {
				key, id, _ := strings.Cut(f, ":")
				m := message.NewMessage(id, nil)
				if key != "-" {
					m.Metadata.Set(PartitionKey, key)
				}
				msgs = append(msgs, m)
			}
			var got []string
			for round := range partitionRounds(msgs) {
				var ids []string
				for _, m := range round {
					ids = append(ids, m.UUID)
				}
				got = append(got, strings.Join(ids, " "))
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("rounds %q, want %q", got, tc.want)
			}
		})
	}
}
