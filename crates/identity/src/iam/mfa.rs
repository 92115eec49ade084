//! Virtual MFA devices: CreateVirtualMFADevice (the Base32 seed and the QR code PNG, once),
//! EnableMFADevice (two consecutive codes), DeactivateMFADevice, ListMFADevices,
//! ListVirtualMFADevices, DeleteVirtualMFADevice.

use base64::Engine;
use latchkey_meta::MfaDevice;
use time::OffsetDateTime;

use super::{Call, QueryError, QueryResult, check_name, check_path, internal, target_user, user_arn};
use crate::mfa;
use crate::paging::Pager;
use crate::query::{Api, ResponseWriter};
use crate::seal::Purpose;

pub async fn create(call: &Call<'_>) -> QueryResult {
    let name = call.params.required("VirtualMFADeviceName")?;
    check_name("VirtualMFADeviceName", name, 226)?;
    let path = call.params.get("Path").unwrap_or("/");
    check_path(path)?;
    let serial = call.identity.account().mfa_arn(path, name);
    call.authorize("iam:CreateVirtualMFADevice", &serial)?;
    let seed = mfa::generate_seed();
    let png = mfa::qr_code_png(&seed, name, "Latchkey").map_err(|_| QueryError::service_failure())?;
    let sealed = call.identity.master().seal(Purpose::MfaSeed, &serial, &seed);
    let device = MfaDevice::new(serial.clone(), sealed, OffsetDateTime::now_utc());
    if !call.identity.store().create_mfa_device(&device).await.map_err(internal)? {
        return Err(QueryError::entity_already_exists("MFADevice entity at the same path and name already exists."));
    }
    let mut w = ResponseWriter::new(Api::Iam, "CreateVirtualMFADevice");
    w.element("VirtualMFADevice", |d| {
        d.text("SerialNumber", &serial)
            .text("Base32StringSeed", &base64::engine::general_purpose::STANDARD.encode(mfa::base32_seed(&seed)))
            .text("QRCodePNG", &base64::engine::general_purpose::STANDARD.encode(&png));
    });
    Ok(w)
}

async fn device(call: &Call<'_>) -> Result<MfaDevice, QueryError> {
    let serial = call.params.required("SerialNumber")?;
    call.identity
        .store()
        .get_mfa_device(serial)
        .await
        .map_err(internal)?
        .ok_or_else(|| QueryError::no_such_entity(format!("MFA Device with serial number {serial} does not exist.")))
}

pub async fn enable(call: &Call<'_>) -> QueryResult {
    let user = target_user(call)?;
    call.authorize("iam:EnableMFADevice", &user_arn(call, &user))?;
    let device = device(call).await?;
    let seed = call
        .identity
        .master()
        .open(Purpose::MfaSeed, &device.serial, &device.seed_sealed)
        .map_err(|_| QueryError::service_failure())?;
    let now = OffsetDateTime::now_utc();
    let step = mfa::verify_consecutive(
        &seed,
        call.params.required("AuthenticationCode1")?,
        call.params.required("AuthenticationCode2")?,
        now.unix_timestamp().max(0) as u64,
    )
    .map_err(|_| QueryError::invalid_authentication_code("Authentication code for device is not valid."))?;
    let step = i64::try_from(step).map_err(|_| QueryError::service_failure())?;
    if !call.identity.store().enable_mfa_device(&device.serial, &user.name, now, step).await.map_err(internal)? {
        return Err(QueryError::entity_already_exists("MFA Device is already in use."));
    }
    Ok(ResponseWriter::new(Api::Iam, "EnableMFADevice"))
}

pub async fn deactivate(call: &Call<'_>) -> QueryResult {
    let user = target_user(call)?;
    call.authorize("iam:DeactivateMFADevice", &user_arn(call, &user))?;
    let device = device(call).await?;
    if !call.identity.store().deactivate_mfa_device(&device.serial, &user.name).await.map_err(internal)? {
        return Err(QueryError::no_such_entity(format!(
            "MFA Device with serial number {} is not enabled for user {}.",
            device.serial, user.name
        )));
    }
    Ok(ResponseWriter::new(Api::Iam, "DeactivateMFADevice"))
}

/// Every device, by serial in byte order (the order markers compare in, whatever the
/// database's collation).
async fn listed_devices(call: &Call<'_>) -> Result<Vec<MfaDevice>, QueryError> {
    let mut devices = call.identity.store().list_mfa_devices().await.map_err(internal)?;
    devices.sort_by(|a, b| a.serial.cmp(&b.serial));
    Ok(devices)
}

pub async fn list(call: &Call<'_>) -> QueryResult {
    let user = target_user(call)?;
    call.authorize("iam:ListMFADevices", &user_arn(call, &user))?;
    let devices = listed_devices(call).await?;
    let mine = devices.iter().filter(|d| d.user_name.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(&user.name)));
    let page = Pager::new(&call.params)?.page(mine, |d| d.serial.clone());
    let mut w = ResponseWriter::new(Api::Iam, "ListMFADevices");
    w.list("MFADevices", page.items, |m, d| {
        m.text("UserName", &user.name).text("SerialNumber", &d.serial);
        if let Some(at) = d.enabled {
            m.timestamp("EnableDate", at);
        }
    })
    .truncation(page.next_marker);
    Ok(w)
}

pub async fn list_virtual(call: &Call<'_>) -> QueryResult {
    call.authorize("iam:ListVirtualMFADevices", &call.identity.account().mfa_arn("/", "*"))?;
    let assigned = call.params.get("AssignmentStatus").unwrap_or("Any");
    let devices = listed_devices(call).await?;
    let directory = call.identity.directory();
    let shown = devices.iter().filter(|d| match assigned {
        "Assigned" => d.user_name.is_some(),
        "Unassigned" => d.user_name.is_none(),
        _ => true,
    });
    let page = Pager::new(&call.params)?.page(shown, |d| d.serial.clone());
    let mut w = ResponseWriter::new(Api::Iam, "ListVirtualMFADevices");
    w.list("VirtualMFADevices", page.items, |m, d| {
        m.text("SerialNumber", &d.serial);
        if let Some(at) = d.enabled {
            m.timestamp("EnableDate", at);
        }
        if let Some((user, _)) = d.user_name.as_deref().and_then(|u| directory.user(u)) {
            m.element("User", |u| {
                u.text("Path", &user.path)
                    .text("UserName", &user.name)
                    .text("UserId", &user.id)
                    .text("Arn", &user_arn(call, user))
                    .timestamp("CreateDate", user.created);
            });
        }
    })
    .truncation(page.next_marker);
    Ok(w)
}

pub async fn delete(call: &Call<'_>) -> QueryResult {
    let device = device(call).await?;
    call.authorize("iam:DeleteVirtualMFADevice", &device.serial)?;
    if !call.identity.store().delete_mfa_device(&device.serial).await.map_err(internal)? {
        return Err(QueryError::delete_conflict("MFA device is still in use (deactivate it first)."));
    }
    Ok(ResponseWriter::new(Api::Iam, "DeleteVirtualMFADevice"))
}
