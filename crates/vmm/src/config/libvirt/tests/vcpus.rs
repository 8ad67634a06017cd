//! `<vcpu current>` and `<vcpus>`: libvirt's rules for `enabled`, `hotpluggable` and `order`
//! (each with its exact error line), what rvmm accepts beyond them, and the boot count.

use super::{dom, err, parse};

/// A domain with `<vcpu current='CURRENT'>4</vcpu>` and `<vcpus>LIST</vcpus>`, all on line 3.
fn four(current: u32, list: &str) -> String {
    dom(&format!(
        "<memory>131072</memory><vcpu current='{current}'>4</vcpu><vcpus>{list}</vcpus>"
    ))
}

fn vcpu(id: u32, attrs: &str) -> String {
    format!("<vcpu id='{id}' {attrs}/>")
}

/// The usual tail: vCPUs 2 and 3 disabled.
const OFF_2_3: &str = "<vcpu id='2' enabled='no'/><vcpu id='3' enabled='no'/>";

#[test]
fn libvirts_hotplug_example_is_accepted() {
    // libvirt's formatdomain example: vCPU 0 fixed, 1 and 2 hotpluggable and online, 3 off.
    let xml = four(
        3,
        "<vcpu id='0' enabled='yes' hotpluggable='no' order='1'/>\
         <vcpu id='1' enabled='yes' hotpluggable='yes' order='2'/>\
         <vcpu id='2' enabled='yes' hotpluggable='yes' order='3'/>\
         <vcpu id='3' enabled='no' hotpluggable='yes'/>",
    );
    let d = parse(&xml).unwrap();
    assert_eq!((d.config.smp.cpus, d.config.smp.maxcpus), (3, 4));
    assert_eq!(d.warnings, Vec::<String>::new());
}

#[test]
fn order_zero_is_no_order_and_disabled_vcpus_may_have_one() {
    let xml = four(
        2,
        "<vcpu id='0' enabled='yes' order='0'/><vcpu id='1' enabled='yes'/>\
         <vcpu id='2' enabled='no' order='4'/><vcpu id='3' enabled='no'/>",
    );
    assert_eq!(parse(&xml).unwrap().config.smp.cpus, 2);
}

#[test]
fn a_disabled_vcpu_must_be_hotpluggable() {
    let xml = four(
        2,
        &format!(
            "{}{}{}{}",
            vcpu(0, "enabled='yes'"),
            vcpu(1, "enabled='yes'"),
            vcpu(2, "enabled='no' hotpluggable='no'"),
            vcpu(3, "enabled='no'")
        ),
    );
    assert_eq!(
        err(&xml),
        "--domain vm.xml:3: <vcpu id='2' enabled='no' hotpluggable='no'>: vCPU 2 is both \
         disabled and not hotpluggable (libvirt refuses it: a vCPU that is off at boot can only \
         be plugged later)"
    );
}

#[test]
fn vcpu_0_is_enabled_fixed_and_first() {
    let with0 = |attrs: &str| {
        err(&four(
            2,
            &format!("{}{}{OFF_2_3}", vcpu(0, attrs), vcpu(1, "enabled='yes'")),
        ))
    };
    assert_eq!(
        with0("enabled='no'"),
        "--domain vm.xml:3: <vcpu id='0' enabled='no'>: vCPU 0 cannot be disabled (it is the \
         boot vCPU, always online)"
    );
    assert_eq!(
        with0("enabled='yes' hotpluggable='yes'"),
        "--domain vm.xml:3: <vcpu id='0' hotpluggable='yes'>: vCPU 0 cannot be hotpluggable (it \
         is the boot vCPU, which can never be unplugged)"
    );
    let second = |order0: &str| {
        err(&four(
            2,
            &format!(
                "{}{}{OFF_2_3}",
                vcpu(0, &format!("enabled='yes' order='{order0}'")),
                vcpu(1, "enabled='yes' order='1'")
            ),
        ))
    };
    assert_eq!(
        second("2"),
        "--domain vm.xml:3: <vcpu id='0' order='2'>: vCPU 0 must be enabled first (order='1', or \
         no order)"
    );
}

#[test]
fn every_enabled_vcpu_has_an_order_or_none_does() {
    let list = |a0: &str, a1: &str| {
        err(&four(
            2,
            &format!("{}{}{OFF_2_3}", vcpu(0, a0), vcpu(1, a1)),
        ))
    };
    assert_eq!(
        list("enabled='yes' order='1'", "enabled='yes'"),
        "--domain vm.xml:3: <vcpu id='1' enabled='yes'>: vCPU 1 has no order, but vCPU 0 has one \
         (libvirt needs an order on every enabled vCPU or on none)"
    );
    assert_eq!(
        list("enabled='yes'", "enabled='yes' order='2'"),
        "--domain vm.xml:3: <vcpu id='1' enabled='yes' order='2'>: vCPU 1 has an order, but \
         vCPU 0 has none (libvirt needs an order on every enabled vCPU or on none)"
    );
}

#[test]
fn non_hotpluggable_vcpus_come_first_in_ascending_order() {
    let xml = four(
        3,
        &format!(
            "{}{}{}{}",
            vcpu(0, "enabled='yes'"),
            vcpu(1, "enabled='yes' hotpluggable='yes'"),
            vcpu(2, "enabled='yes'"),
            vcpu(3, "enabled='no'")
        ),
    );
    assert_eq!(
        err(&xml),
        "--domain vm.xml:3: <vcpu id='2'>: vCPU 2 is not hotpluggable but vCPU 1 before it is \
         (libvirt needs the non-hotpluggable vCPUs first)"
    );
    let xml = four(
        3,
        &format!(
            "{}{}{}{}",
            vcpu(0, "enabled='yes' order='1'"),
            vcpu(1, "enabled='yes' order='3'"),
            vcpu(2, "enabled='yes' order='2'"),
            vcpu(3, "enabled='no'")
        ),
    );
    assert_eq!(
        err(&xml),
        "--domain vm.xml:3: <vcpu id='2' order='2'>: vCPU 2 comes before vCPU 1 in order \
         (libvirt needs the non-hotpluggable vCPUs in ascending order)"
    );
    // Hotpluggable vCPUs may take any order.
    let xml = four(
        3,
        &format!(
            "{}{}{}{}",
            vcpu(0, "enabled='yes' order='1'"),
            vcpu(1, "enabled='yes' hotpluggable='yes' order='3'"),
            vcpu(2, "enabled='yes' hotpluggable='yes' order='2'"),
            vcpu(3, "enabled='no'")
        ),
    );
    assert_eq!(parse(&xml).unwrap().config.smp.cpus, 3);
}

#[test]
fn orders_are_unique_and_within_the_count() {
    let xml = four(
        2,
        &format!(
            "{}{}{}{}",
            vcpu(0, "enabled='yes' order='1'"),
            vcpu(1, "enabled='yes' order='2'"),
            vcpu(2, "enabled='no' order='2'"),
            vcpu(3, "enabled='no'")
        ),
    );
    assert_eq!(
        err(&xml),
        "--domain vm.xml:3: <vcpu id='2' order='2'>: order 2 is also vCPU 1's (each order is \
         unique)"
    );
    let xml = four(
        2,
        &format!(
            "{}{}{}{}",
            vcpu(0, "enabled='yes' order='1'"),
            vcpu(1, "enabled='yes' order='2'"),
            vcpu(2, "enabled='no' order='5'"),
            vcpu(3, "enabled='no'")
        ),
    );
    assert_eq!(
        err(&xml),
        "--domain vm.xml:3: <vcpu id='2' order='5'>: order 5 exceeds the vCPU count (4)"
    );
    let xml = four(
        2,
        &format!(
            "{}{}{OFF_2_3}",
            vcpu(0, "enabled='yes' order='1'"),
            vcpu(1, "enabled='yes' order='x'")
        ),
    );
    assert_eq!(
        err(&xml),
        "--domain vm.xml:3: <vcpu order='x'>: 'x' is not a number (expected an unsigned decimal \
         integer)"
    );
}

#[test]
fn a_fixed_vcpu_other_than_0_is_accepted_with_a_warning() {
    let xml = four(
        2,
        &format!(
            "{}{}{OFF_2_3}",
            vcpu(0, "enabled='yes' hotpluggable='no'"),
            vcpu(1, "enabled='yes' hotpluggable='no'")
        ),
    );
    assert_eq!(
        parse(&xml).unwrap().warnings,
        [
            "--domain vm.xml:3: domain/vcpus/vcpu: hotpluggable='no' is not enforced: rvmm can \
          unplug any vCPU but vCPU 0 (`rvmm setvcpus`, QMP device_del of vCPU 1's QOM path)"
        ]
    );
}

#[test]
fn bad_values_name_the_attribute() {
    let xml = four(
        2,
        &format!(
            "{}{}{OFF_2_3}",
            vcpu(0, "enabled='yes'"),
            vcpu(1, "enabled='yes' hotpluggable='maybe'")
        ),
    );
    assert_eq!(
        err(&xml),
        "--domain vm.xml:3: <vcpu hotpluggable='maybe'>: unknown value 'maybe' (expected yes, no)"
    );
    let xml = four(
        2,
        &format!("{}{}{OFF_2_3}", vcpu(0, "enabled='yes'"), vcpu(1, "")),
    );
    assert_eq!(
        err(&xml),
        "--domain vm.xml:3: <vcpu>: the 'enabled' attribute is missing"
    );
}
