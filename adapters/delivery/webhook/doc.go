// Package webhook delivers the engine's events to HTTP endpoints that
// companies register over the API, signed the Standard Webhooks way
// (https://www.standardwebhooks.com), retried with back-off for more than a
// day, with a dead-letter list and replay.
//
// # What a receiver gets
//
// A POST whose body is the event as a structured-mode CloudEvent (JSON with
// specversion, id, type "kyc.customer.<Type>", source, subject = customer
// id, time, dataschema, data and the kycstream / kycrevision / kycposition
// extensions; never the event's personal part), with the headers
//
//	webhook-id:        the delivery id, the same on every attempt: deduplicate on it
//	webhook-timestamp: Unix seconds when this attempt was signed
//	webhook-signature: "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>" per active secret, space-separated
//
// so any Standard Webhooks library verifies it with the "whsec_..." secret
// shown when the endpoint was created or its secret rotated. A 2xx answer
// settles the delivery; anything else, a redirect, a refused connection or
// no answer within the timeout (10s) fails the attempt.
//
// # Which events go where
//
// An endpoint belongs to a company and gets the events of that company's
// customers; an endpoint of company "*" (AllCompanies, only superusers may
// register one) gets every company's. The company is the customer's, not
// the actor's: a superuser acting on another company's customer must not
// send that customer's events to the superuser's own company. Only the
// registration (CustomerRegistered) names the customer's company, and bus
// messages carry no company, so the fan-out keeps the company of every
// registration it sees in memory. A customer it does not know (registered
// before this process saw it, or forgotten when the memory filled up) is
// looked up in table webhook_customers, else resolved through
// Config.CompanyOf (CompaniesFrom: the engine reads the registration) and
// written to that table. Without a resolver the fan-out writes every
// registration to the table instead, and a customer found in neither gets
// its events sent only to "*" endpoints, with a warning in the log.
// An endpoint's type filter (domain types such as "StatusChanged"; none
// means all) then selects among the company's events. Events of streams
// that are not a customer's (identity bindings) are never sent.
//
// # How it is built
//
// Everything runs on one Watermill message.Router:
//
//  1. Fan-out handler, on the bus topic "kyc.events" (consumer group
//     "webhooks" where the transport has groups): for each event, one
//     pending delivery per matching endpoint, inserted in one transaction
//     before the message is acked. The delivery id is derived from the
//     endpoint and event ids (UUIDv5) and unique, so an event the bus hands
//     over twice (after a crash, a nack, a relay republishing) makes no
//     second delivery. From here on the deliveries table is the queue, so
//     pending deliveries survive restarts.
//  2. Delivery handler, on an in-process gochannel topic that is not the
//     bus: one POST per message, each recorded as an attempt. Watermill's
//     Retry middleware repeats a failed request a few times within seconds
//     with exponential back-off and jitter (Config.Retry: by default 2
//     retries after ~1s and ~2s, ±50%), which rides out blips; when those
//     are spent, its PoisonQueue middleware moves the message to a poison
//     topic. Together these make one "round".
//  3. Poison handler: records the failed round and schedules the next one
//     after the long back-off (Config.Schedule: by default 9 waits from 30s
//     to 16h, ±20%, 10 rounds over 25h22m to 38h03m), or marks the
//     delivery dead after the last round: the dead-letter list, which an
//     operator replays once the receiver works again.
//
// The one piece that is not a Watermill handler is a small scheduler that
// publishes due deliveries (next_attempt_at passed) to the delivery topic.
// It cannot be avoided: a wait of hours that must outlive the process can
// only be kept in the database, and no Watermill middleware holds a
// message that long. It claims each row with a lease (in_flight_until; on
// PostgreSQL with FOR UPDATE SKIP LOCKED), so processes that share the
// database never send one delivery at the same time, and a process that
// dies mid-request loses only its lease: the delivery is sent again when
// the lease ends (or at once when the process stops cleanly, since it hands
// its claims back). The retries, their jitter and the poison routing
// themselves are Watermill's.
//
// Delivery is at least once: a receiver may see a request again after a
// crash between its 2xx and the record of it, and should deduplicate on
// webhook-id.
//
// # Secrets
//
// Each secret is 32 random bytes, shown once (on creation and rotation) as
// "whsec_" + base64. Rotation adds a secret and lets the old ones sign for
// Config.RotationOverlap more (24h), so receivers switch without missing a
// delivery. The secrets are stored as they are in the delivery state: the
// engine has no key management service to wrap them with, and signing
// needs the raw key, so whoever reads that database can sign as the
// engine. Protect it like the keys file.
package webhook
