//! Identity verification (본인인증) through Pier's test identity provider: the browser window of
//! `IMP.certification` (http/testid.rs) and the REST OTP flow (`POST /certifications/otp/request`,
//! `POST /certifications/otp/confirm/{imp_uid}`), looked up and deleted by imp_uid.
//!
//! The test provider stands in for the carriers' identity services the way the test PG stands in
//! for card companies: it checks the shape of what is entered, "sends" no SMS and accepts one code,
//! [`TEST_OTP`] (docs/test-identities.md). Everything else is real:
//!
//! - The person (name, phone, birth date, gender digit, carrier) is personal data: sealed with
//!   AES-256-GCM under `keys::Purpose::PersonalData` (the imp_uid as associated data) before it
//!   reaches the store, opened only to answer a certified record, never logged (`Person`'s
//!   `Debug` is redacted). `DELETE /certifications/{imp_uid}` removes the row.
//! - CI (`unique_key`, 88 characters) is base64(HMAC-SHA512) of the person's name, birth date and
//!   gender digit under `Purpose::CertificationCi`: the same person gets the same CI at every
//!   merchant, and nobody without the server key can recompute it from a name and a birthday.
//!   DI (`unique_in_site`, 64 characters) is hex(HMAC-SHA256) of (merchant, CI) under
//!   `Purpose::CertificationDi`: stable within a merchant, different across merchants.
//! - The store guards every transition (`window` → `requested` → `certified` | `failed` |
//!   `cancelled`) with a conditional update: a second confirm finds nothing to change.

use super::window::WindowMode;
use super::{Engine, Error, Result};
use base64::Engine as _;
use pier_domain::MerchantUid;
use pier_store::{CertStep, Certification, CertificationStatus, StoreError};
use serde::{Deserialize, Serialize};

mod person;
mod sealed;
mod window;

pub use person::*;
use sealed::*;

/// The only code the test identity provider accepts (no SMS is ever sent).
pub const TEST_OTP: &str = "123456";
/// How long a sent code is valid: 3 minutes, as carriers' SMS codes are.
pub const OTP_TTL_SECS: i64 = 180;
/// Wrong codes before the request fails and a new one is needed (5, as Danal's window allows).
pub const MAX_OTP_ATTEMPTS: i64 = 5;
/// The identity providers i'mport names in `pg` (`danal.{CPID}` too); the test provider answers
/// for each. Without `pg`: danal, i'mport's default.
pub const PROVIDERS: &[&str] = &["danal", "inicis_unified", "inicis", "kcp_v2"];
pub const DEFAULT_PROVIDER: &str = "danal";
pub const CARRIERS: &[&str] = &["SKT", "KT", "LGT"];
/// Longest name accepted: Korean names are 2–5 syllables; foreigners' romanized names are longer.
pub const MAX_NAME_CHARS: usize = 40;
/// Longest `company` (a service name or domain shown in the SMS).
pub const MAX_COMPANY_CHARS: usize = 100;
/// A failed certification (wrong codes, under `min_age`), as the callback and redirect see it.
pub const CERT_FAILED: &str = "F1300";
pub const MSG_NOT_FOUND: &str = "인증결과가 존재하지 않습니다. (no such certification)";
pub const MSG_USER_CANCEL: &str = "사용자가 본인인증을 취소하였습니다";
const SEALED_V1: &str = "v1:";
const NONCE_LEN: usize = 12;

/// A person as entered, before any check.
#[derive(Clone, Default)]
pub struct PersonInput {
    pub name: String,
    pub phone: String,
    pub birth: String,
    pub gender_digit: String,
    pub carrier: String,
    pub is_mvno: bool,
}

impl std::fmt::Debug for PersonInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PersonInput(<personal data redacted>)")
    }
}

/// A checked person: the sealed part of a certification.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub name: String,
    /// Digits only.
    pub phone: String,
    /// `YYYYMMDD`.
    pub birth: String,
    /// The 7th digit of the resident registration number: 1–4 Koreans, 5–8 foreigners.
    pub gender_digit: u8,
    /// SKT, KT or LGT.
    pub carrier: String,
    pub is_mvno: bool,
}

impl std::fmt::Debug for Person {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Person(<personal data redacted>)")
    }
}

impl Person {
    pub fn gender(&self) -> &'static str {
        if self.gender_digit % 2 == 1 {
            "male"
        } else {
            "female"
        }
    }
    pub fn foreigner(&self) -> bool {
        (5..=8).contains(&self.gender_digit)
    }
    /// `YYYY-MM-DD`.
    pub fn birthday(&self) -> String {
        format!(
            "{}-{}-{}",
            &self.birth[..4],
            &self.birth[4..6],
            &self.birth[6..8]
        )
    }
    /// SKT, KT, LGT, or `…_MVNO` for a budget carrier on that network (OAS `carrier`).
    pub fn carrier_code(&self) -> String {
        if self.is_mvno {
            format!("{}_MVNO", self.carrier)
        } else {
            self.carrier.clone()
        }
    }
    /// Full years of age on the day of unix time `now` (UTC).
    pub fn age_at(&self, now: i64) -> i64 {
        let today = chrono::DateTime::from_timestamp(now, 0)
            .map(|d| d.format("%Y%m%d").to_string())
            .unwrap_or_default();
        let (Ok(t), Ok(b)) = (today.parse::<i64>(), self.birth.parse::<i64>()) else {
            return 0;
        };
        // YYYYMMDD numbers: the difference over 10,000 is the count of full years.
        if b > t {
            return -1;
        }
        (t - b) / 10_000
    }
}

/// What the window's page may prefill (`IMP.certification`'s name, phone, carrier). Sealed too.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prefill {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub carrier: Option<String>,
}

impl std::fmt::Debug for Prefill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Prefill(<personal data redacted>)")
    }
}

/// A certification as the REST API answers it: the person only once certified.
#[derive(Clone, Debug)]
pub struct CertView {
    pub cert: Certification,
    pub person: Option<Person>,
}

/// `POST /certifications/otp/request`.
#[derive(Clone, Debug, Default)]
pub struct OtpRequest {
    pub person: PersonInput,
    pub company: Option<String>,
    pub merchant_uid: Option<String>,
    pub pg: Option<String>,
}

/// A validated `IMP.certification`.
#[derive(Clone, Debug)]
pub struct CertWindowRequest {
    pub imp_code: String,
    pub mode: WindowMode,
    pub parent_origin: Option<String>,
    pub merchant_uid: Option<MerchantUid>,
    pub m_redirect_url: Option<String>,
    pub pg: Option<String>,
    pub min_age: Option<i64>,
    pub company: Option<String>,
    pub prefill: Prefill,
}

#[derive(Clone, Debug)]
pub struct CertWindowOpened {
    pub imp_uid: String,
    pub window_id: String,
    pub window_url: String,
    /// As for payment windows: the page origin that may read the answer, `None` = any.
    pub cors_origin: Option<String>,
}

/// What a code entered in the window did.
#[derive(Clone, Debug)]
pub enum WindowConfirm {
    /// Certified, or failed for good: the result is ready (`cert_result`).
    Done(Box<Certification>),
    /// A wrong code; the buyer may try again.
    WrongCode { attempts_left: i64 },
}

fn not_found() -> Error {
    Error::NotFound(MSG_NOT_FOUND.into())
}

impl Engine {
    fn new_certification(&self, merchant_id: &str, pg_provider: String) -> Certification {
        let now = self.now();
        Certification {
            imp_uid: pier_domain::ImpUid::generate().into_string(),
            merchant_id: merchant_id.to_owned(),
            pg_provider,
            // The provider's transaction id: 20 random hex digits, as the test PG's tids.
            pg_tid: format!("testid_{}", pier_domain::ids::random_hex(10)),
            created_at: now,
            expires_at: now + OTP_TTL_SECS,
            ..Default::default()
        }
    }

    async fn insert_certification(&self, c: &Certification) -> Result<()> {
        match self.store.insert_certification(c).await {
            Ok(()) => Ok(()),
            // An imp_uid collision (1 in 10^12): the caller may retry.
            Err(StoreError::Conflict(_)) => Err(Error::Unavailable(
                "일시적인 오류입니다. 다시 시도해주세요. (try again)".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// `POST /certifications/otp/request`: checks the person and "sends" the code.
    pub async fn request_otp(&self, merchant_id: &str, r: OtpRequest) -> Result<String> {
        let person = parse_person(&r.person, self.now())?;
        let pg = provider(r.pg.as_deref())?;
        let merchant_uid = r
            .merchant_uid
            .as_deref()
            .map(MerchantUid::parse)
            .transpose()?
            .map(|u| u.to_string());
        if r.company
            .as_ref()
            .is_some_and(|c| c.chars().count() > MAX_COMPANY_CHARS)
        {
            return Err(Error::Invalid(format!(
                "company must be at most {MAX_COMPANY_CHARS} characters"
            )));
        }
        let mut c = self.new_certification(merchant_id, pg);
        c.merchant_uid = merchant_uid;
        c.company = r.company;
        c.status = CertificationStatus::Requested;
        c.sealed = Some(seal(
            &self.cfg.server_key,
            &c.imp_uid,
            &Sealed {
                person: Some(person),
                prefill: None,
            },
        )?);
        self.insert_certification(&c).await?;
        Ok(c.imp_uid)
    }

    /// `POST /certifications/otp/confirm/{imp_uid}`.
    pub async fn confirm_otp(
        &self,
        merchant_id: &str,
        imp_uid: &str,
        otp: Option<&str>,
    ) -> Result<CertView> {
        let c = self
            .store
            .get_certification(merchant_id, imp_uid)
            .await?
            .ok_or_else(not_found)?;
        let otp = otp
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::Invalid("otp is required (the code sent by SMS)".into()))?;
        match self.check_code(&c, otp).await? {
            WindowConfirm::Done(done) if done.status == CertificationStatus::Certified => {
                self.view(*done)
            }
            WindowConfirm::Done(done) => {
                Err(Error::PgRefused(done.fail_reason.unwrap_or_else(|| {
                    "본인인증에 실패하였습니다. (not certified)".into()
                })))
            }
            WindowConfirm::WrongCode { attempts_left } => Err(Error::PgRefused(format!(
                "인증번호가 일치하지 않습니다. (wrong code: {attempts_left} attempts left)"
            ))),
        }
    }

    /// The code check shared by the REST confirm and the window: refuses what is not waiting
    /// for a code, counts a wrong code, certifies on the right one.
    async fn check_code(&self, c: &Certification, otp: &str) -> Result<WindowConfirm> {
        let now = self.now();
        match c.status {
            CertificationStatus::Requested => {}
            CertificationStatus::Certified => {
                return Err(Error::Invalid(
                    "이미 인증이 완료된 건입니다. (already certified)".into(),
                ))
            }
            CertificationStatus::Window => {
                return Err(Error::Invalid(
                    "인증번호가 요청되지 않았습니다. (no code was requested yet)".into(),
                ))
            }
            CertificationStatus::Failed | CertificationStatus::Cancelled => {
                return Err(Error::Invalid(
                    "종료된 본인인증 요청입니다. (the certification failed or was cancelled; request again)"
                        .into(),
                ))
            }
        }
        if now > c.expires_at {
            return Err(Error::Invalid(
                "인증번호 유효시간이 지났습니다. 다시 요청해주세요. (the code expired; request a new one)"
                    .into(),
            ));
        }
        let right = bool::from(subtle::ConstantTimeEq::ct_eq(
            otp.trim().as_bytes(),
            TEST_OTP.as_bytes(),
        ));
        let gone = || {
            Error::Invalid(
                "이미 처리된 본인인증 요청입니다. (the certification was already processed)".into(),
            )
        };
        if !right {
            let step = CertStep::WrongCode {
                max_attempts: MAX_OTP_ATTEMPTS,
                reason: format!(
                    "인증번호를 {MAX_OTP_ATTEMPTS}회 잘못 입력하였습니다. (too many wrong codes)"
                ),
            };
            let after = self
                .store
                .step_certification(&c.merchant_id, &c.imp_uid, &step)
                .await?
                .ok_or_else(gone)?;
            if after.status == CertificationStatus::Failed {
                return Ok(WindowConfirm::Done(Box::new(after)));
            }
            return Ok(WindowConfirm::WrongCode {
                attempts_left: MAX_OTP_ATTEMPTS - after.otp_attempts,
            });
        }
        let person = open(&self.cfg.server_key, &c.imp_uid, c.sealed.as_deref())?
            .person
            .ok_or_else(sealing_failed)?;
        if let Some(min) = c.min_age.filter(|m| person.age_at(now) < *m) {
            let step = CertStep::Ended {
                status: CertificationStatus::Failed,
                reason: format!(
                    "만 {min}세 이상만 인증할 수 있습니다. (younger than min_age {min})"
                ),
            };
            let after = self
                .store
                .step_certification(&c.merchant_id, &c.imp_uid, &step)
                .await?
                .ok_or_else(gone)?;
            return Ok(WindowConfirm::Done(Box::new(after)));
        }
        let ci = unique_key(&self.cfg.server_key, &person);
        let di = unique_in_site(&self.cfg.server_key, &c.merchant_id, &ci);
        let step = CertStep::Certified {
            unique_key: ci,
            unique_in_site: di,
            now,
        };
        let after = self
            .store
            .step_certification(&c.merchant_id, &c.imp_uid, &step)
            .await?
            .ok_or_else(gone)?;
        Ok(WindowConfirm::Done(Box::new(after)))
    }

    fn view(&self, cert: Certification) -> Result<CertView> {
        let person = if cert.status == CertificationStatus::Certified {
            open(&self.cfg.server_key, &cert.imp_uid, cert.sealed.as_deref())?.person
        } else {
            None
        };
        Ok(CertView { cert, person })
    }

    /// `GET /certifications/{imp_uid}`.
    pub async fn certification(&self, merchant_id: &str, imp_uid: &str) -> Result<CertView> {
        let c = self
            .store
            .get_certification(merchant_id, imp_uid)
            .await?
            .ok_or_else(not_found)?;
        self.view(c)
    }

    /// `DELETE /certifications/{imp_uid}`: answers the record as it was, then nothing remains.
    pub async fn delete_certification(&self, merchant_id: &str, imp_uid: &str) -> Result<CertView> {
        let c = self
            .store
            .delete_certification(merchant_id, imp_uid)
            .await?
            .ok_or_else(not_found)?;
        self.view(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, birth: &str, gd: &str) -> PersonInput {
        PersonInput {
            name: name.into(),
            phone: "010-1234-5678".into(),
            birth: birth.into(),
            gender_digit: gd.into(),
            carrier: "SKT".into(),
            is_mvno: false,
        }
    }

    // 2026-12-06 00:00:00 UTC.
    const NOW: i64 = 1_796_515_200;

    #[test]
    fn people_are_parsed() {
        let p = parse_person(&input(" 홍길동 ", "880101", "1"), NOW).unwrap();
        assert_eq!(p.name, "홍길동");
        assert_eq!(p.phone, "01012345678");
        assert_eq!(p.birthday(), "1988-01-01");
        assert_eq!(p.gender(), "male");
        assert!(!p.foreigner());
        assert_eq!(p.age_at(NOW), 38);
        let q = parse_person(&input("홍길동", "1988.01.01", "1"), NOW).unwrap();
        assert_eq!(p, q);
        let f = parse_person(&input("Jane Doe", "050315", "8"), NOW).unwrap();
        assert_eq!(f.birthday(), "2005-03-15");
        assert_eq!((f.gender(), f.foreigner()), ("female", true));
        for bad in [
            input("", "880101", "1"),
            input("홍<b>", "880101", "1"),
            input("홍길동", "881301", "1"),
            input("홍길동", "19880101", "3"),
            input("홍길동", "8801", "1"),
            input("홍길동", "880101", "9"),
            input("홍길동", "991231", "3"),
            PersonInput {
                phone: "0212345678a".into(),
                ..input("홍길동", "880101", "1")
            },
            PersonInput {
                phone: "02-123-4567".into(),
                ..input("홍길동", "880101", "1")
            },
            PersonInput {
                carrier: "KTF".into(),
                ..input("홍길동", "880101", "1")
            },
        ] {
            assert!(parse_person(&bad, NOW).is_err());
        }
    }

    #[test]
    fn ci_is_stable_per_person_and_di_per_merchant() {
        let k = [9u8; 32];
        let a = parse_person(&input("홍길동", "880101", "1"), NOW).unwrap();
        let b = PersonInput {
            phone: "01099998888".into(),
            carrier: "KT".into(),
            ..input("홍길동", "19880101", "1")
        };
        let b = parse_person(&b, NOW).unwrap();
        let ci = unique_key(&k, &a);
        assert_eq!(ci.len(), 88);
        assert_eq!(ci, unique_key(&k, &b), "phone and carrier are not identity");
        let other = parse_person(&input("홍길동", "880102", "1"), NOW).unwrap();
        assert_ne!(ci, unique_key(&k, &other));
        assert_ne!(ci, unique_key(&[8u8; 32], &a), "keyed");
        let di = unique_in_site(&k, "imp1", &ci);
        assert_eq!(di.len(), 64);
        assert_eq!(di, unique_in_site(&k, "imp1", &ci));
        assert_ne!(di, unique_in_site(&k, "imp2", &ci));
    }

    #[test]
    fn sealed_data_opens_only_for_its_certification() {
        let k = [3u8; 32];
        let s = Sealed {
            person: Some(parse_person(&input("홍길동", "880101", "1"), NOW).unwrap()),
            prefill: None,
        };
        let sealed = seal(&k, "imp_1", &s).unwrap();
        assert!(!sealed.contains("홍길동") && !sealed.contains("01012345678"));
        assert_eq!(
            open(&k, "imp_1", Some(&sealed)).unwrap().person,
            s.person.clone()
        );
        assert!(open(&k, "imp_2", Some(&sealed)).is_err());
        assert!(open(&[4u8; 32], "imp_1", Some(&sealed)).is_err());
    }
}
