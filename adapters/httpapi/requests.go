package httpapi

import (
	"encoding/json"

	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

// The request bodies. Field names are those of SPEC section 3; every body is
// decoded strictly (unknown fields are refused).

type registerRequest struct {
	Lifecycle      string          `json:"lifecycle"`
	Company        string          `json:"company"`
	CompanyName    string          `json:"company_name"`
	PublicID       string          `json:"public_id"`
	Name           *domain.Name    `json:"name"`
	IDCardNumber   string          `json:"id_card_number"`
	Nationality    string          `json:"nationality"`
	BirthDate      string          `json:"birth_date"`
	Gender         string          `json:"gender"`
	Language       string          `json:"language"`
	Emails         []string        `json:"emails"`
	Phones         []string        `json:"phones"`
	Address        *domain.Address `json:"address"`
	PersonType     string          `json:"person_type"`
	ReferralCode   string          `json:"referral_code"`
	CreatedByAgent string          `json:"created_by_agent"`
	AccessRoles    []string        `json:"access_roles"`
	AccessGroups   []string        `json:"access_groups"`
	Tags           []string        `json:"tags"`
	ActiveServices []string        `json:"active_services"`
}

func (b registerRequest) command() domain.RegisterCustomer {
	return domain.RegisterCustomer{
		Lifecycle: b.Lifecycle, Company: b.Company, CompanyName: b.CompanyName, PublicID: b.PublicID,
		Name: b.Name, IDCardNumber: b.IDCardNumber, Nationality: b.Nationality, BirthDate: b.BirthDate,
		Gender: b.Gender, Language: b.Language, Emails: b.Emails, Phones: b.Phones, Address: b.Address,
		PersonType: b.PersonType, ReferralCode: b.ReferralCode, CreatedByAgent: b.CreatedByAgent,
		AccessRoles: b.AccessRoles, AccessGroups: b.AccessGroups, Tags: b.Tags, ActiveServices: b.ActiveServices,
	}
}

type updateProfileRequest struct {
	Name         *domain.Name    `json:"name"`
	IDCardNumber *string         `json:"id_card_number"`
	Nationality  *string         `json:"nationality"`
	BirthDate    *string         `json:"birth_date"`
	Gender       *string         `json:"gender"`
	Language     *string         `json:"language"`
	Emails       *[]string       `json:"emails"`
	Phones       *[]string       `json:"phones"`
	Address      *domain.Address `json:"address"`
	PersonType   *string         `json:"person_type"`
	ReferralCode *string         `json:"referral_code"`
}

func (b updateProfileRequest) command() domain.Command {
	return domain.UpdateProfile{Name: b.Name, IDCardNumber: b.IDCardNumber, Nationality: b.Nationality, BirthDate: b.BirthDate,
		Gender: b.Gender, Language: b.Language, Emails: b.Emails, Phones: b.Phones, Address: b.Address,
		PersonType: b.PersonType, ReferralCode: b.ReferralCode}
}

type statusRequest struct {
	Status     string   `json:"status"`
	Reason     string   `json:"reason"`
	Labels     []string `json:"labels"`
	RejectType string   `json:"reject_type"`
}

type transitionRequest struct {
	Reason     string   `json:"reason"`
	Labels     []string `json:"labels"`
	RejectType string   `json:"reject_type"`
}

type documentRequest struct {
	DocumentID string `json:"document_id"`
	Type       string `json:"type"`
	Number     string `json:"number"`
	Country    string `json:"country"`
	ExpiryDate string `json:"expiry_date"`
	FileDigest string `json:"file_digest"`
}

type reviewItemRequest struct {
	Item     string `json:"item"`
	Decision string `json:"decision"`
	Comment  string `json:"comment"`
}

type rejectRequest struct {
	Reason        string   `json:"reason"`
	Labels        []string `json:"labels"`
	RejectType    string   `json:"reject_type"`
	ClientComment string   `json:"client_comment"`
}

type resubmissionRequest struct {
	Items   []string `json:"items"`
	Comment string   `json:"comment"`
}

type resubmitRequest struct {
	Items []string `json:"items"`
}

type riskRequest struct {
	Risk   *string `json:"risk"`
	Source string  `json:"source"`
}

type amlRequest struct {
	Result    *bool  `json:"result"`
	Provider  string `json:"provider"`
	Reference string `json:"reference"`
}

type videoCallRequest struct {
	Status string `json:"status"`
}

type bioPayRequest struct {
	Enabled *bool `json:"enabled"`
}

type levelRequest struct {
	Level *int `json:"level"`
}

type contactRequest struct {
	Channel  string `json:"channel"`
	Verified *bool  `json:"verified"`
}

type noteRequest struct {
	Text string `json:"text"`
}

type tagsRequest struct {
	Add    []string `json:"add"`
	Remove []string `json:"remove"`
}

type stepRequest struct {
	Step    string          `json:"step"`
	Result  string          `json:"result"`
	Details json.RawMessage `json:"details"`
}

type aiSummaryRequest struct {
	Summary string `json:"summary"`
	Model   string `json:"model"`
}

type servicesRequest struct {
	ActiveServices []string `json:"active_services"`
}

type accessRequest struct {
	AccessRoles  []string `json:"access_roles"`
	AccessGroups []string `json:"access_groups"`
}

// customerView is the customer as the API shows it: the folded state plus
// the fields derived from it.
type customerView struct {
	*domain.Customer
	Age                *int   `json:"age"`
	VerificationStatus string `json:"verification_status"`
	State              string `json:"state,omitempty"`
	AggregatedStatus   string `json:"aggregated_status"`
}

func (s *Server) view(caller domain.Caller, c *domain.Customer) customerView {
	l, _ := s.svc.Lifecycles().Get(c.Lifecycle, c.LifecycleVersion)
	v := customerView{Customer: c, VerificationStatus: c.VerificationStatus(), State: c.State(l), AggregatedStatus: c.AggregatedStatus(l)}
	if age := c.Age(s.clock()); age >= 0 {
		v.Age = &age
	}
	v.Customer = projections.SeenBy(c, caller)
	return v
}
