//! Identity verification (본인인증): `GET`/`DELETE /certifications/{imp_uid}`,
//! `POST /certifications/otp/request` and `POST /certifications/otp/confirm/{imp_uid}`
//! (OAS `CertificationAnnotation`, `CertificationOTPAnnotation`).
//!
//! The person's fields are personal data: parsed here into a redacting `PersonInput`, checked and
//! sealed by the engine, never echoed in an error message or logged.

use super::error::{ApiResult, Envelope};
use super::params::{Body, Params};
use super::{AppState, Merchant};
use crate::engine::certifications::{CertView, OtpRequest, PersonInput, MAX_COMPANY_CHARS};
use axum::extract::{Path, State};
use axum::Extension;
use pier_domain::{CertificationStatus, MerchantUid};
use serde_json::{json, Value};

/// The OAS `CertificationAnnotation` of a record; the person's fields only once certified.
pub fn certification_json(v: &CertView) -> Value {
    let c = &v.cert;
    let p = v.person.as_ref();
    json!({
        "imp_uid": c.imp_uid,
        "merchant_uid": c.merchant_uid,
        "pg_tid": c.pg_tid,
        "pg_provider": c.pg_provider,
        "name": p.map(|p| p.name.clone()),
        "gender": p.map(|p| p.gender()),
        "birthday": p.map(|p| p.birthday()),
        "foreigner": p.is_some_and(|p| p.foreigner()),
        "foreigner_v2": p.map(|p| p.foreigner()),
        "phone": p.map(|p| p.phone.clone()),
        "carrier": p.map(|p| p.carrier_code()),
        "certified": c.status == CertificationStatus::Certified,
        "certified_at": c.certified_at,
        "unique_key": c.unique_key,
        "unique_in_site": c.unique_in_site,
        "origin": c.origin,
    })
}

/// The person's fields of a form or JSON body (`name`, `phone`, `birth`, `gender_digit`,
/// `carrier`, `is_mvno`): shape and length here, meaning in the engine.
pub fn person_input(p: &Params) -> ApiResult<PersonInput> {
    Ok(PersonInput {
        name: p.str_req("name", 100)?,
        phone: p.str_req("phone", 30)?,
        birth: p.str_req("birth", 20)?,
        gender_digit: p.str_req("gender_digit", 4)?,
        carrier: p.str_req("carrier", 10)?,
        is_mvno: p.bool_opt("is_mvno")?.unwrap_or(false),
    })
}

pub async fn get_one(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(imp_uid): Path<String>,
) -> ApiResult<Envelope<Value>> {
    let v = engine.certification(&m, &imp_uid).await?;
    Ok(Envelope::ok(certification_json(&v)))
}

pub async fn delete_one(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(imp_uid): Path<String>,
) -> ApiResult<Envelope<Value>> {
    let v = engine.delete_certification(&m, &imp_uid).await?;
    Ok(Envelope::ok(certification_json(&v)))
}

pub async fn otp_request(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Body(p): Body,
) -> ApiResult<Envelope<Value>> {
    let person = person_input(&p)?;
    // Accepted as documented; the test provider has no channels, SMS or app to choose.
    p.str_opt("channel_key", 100)?;
    p.str_opt("bypass", 2_000)?;
    if let Some(m) = p.str_opt("verification_method", 3)? {
        if m != "SMS" {
            return Err(super::error::ApiError::bad_request(
                "verification_method must be SMS (the test identity provider has no app)",
            ));
        }
    }
    let r = OtpRequest {
        person,
        company: p.str_opt("company", MAX_COMPANY_CHARS)?,
        merchant_uid: p.str_opt("merchant_uid", MerchantUid::MAX_CHARS)?,
        pg: p.str_opt("pg", 60)?,
    };
    let imp_uid = engine.request_otp(&m, r).await?;
    Ok(Envelope::ok(json!({ "imp_uid": imp_uid })))
}

pub async fn otp_confirm(
    State(engine): State<AppState>,
    Extension(Merchant(m)): Extension<Merchant>,
    Path(imp_uid): Path<String>,
    Body(p): Body,
) -> ApiResult<Envelope<Value>> {
    let otp = p.str_opt("otp", 10)?;
    let v = engine.confirm_otp(&m, &imp_uid, otp.as_deref()).await?;
    Ok(Envelope::ok(certification_json(&v)))
}
