//! A job's serde form is its snapshot in the stores: it must read back as the same job, and
//! what is not a job's snapshot (an old shape, a foreign document) must fail to read, so the
//! store replays the events instead of trusting it.

use super::*;

fn job_after(events: Vec<JobEvent>) -> Job {
    let mut job = Job::default();
    for event in events {
        job.apply(event);
    }
    job
}

#[test]
fn a_job_reads_back_from_its_snapshot_as_the_same_job() {
    for job in [
        Job::default(),
        job_after(vec![e_created()]),
        job_after(vec![e_created(), e_cancelled("moved")]),
    ] {
        let snapshot = serde_json::to_value(&job).expect("a job serialises");
        let read: Job = serde_json::from_value(snapshot).expect("its snapshot reads");
        assert_eq!(read, job);
    }
}

#[test]
fn what_is_not_a_jobs_snapshot_does_not_read() {
    let mut renamed = serde_json::to_value(job_after(vec![e_created()])).expect("a job");
    if let Some(state) = renamed["state"].as_object_mut() {
        let status = state.remove("status").expect("a status");
        state.insert("job_status".into(), status);
    }
    for snapshot in [
        serde_json::json!({}),
        serde_json::json!({"unexpected": true}),
        serde_json::json!({"state": null, "version": 3}),
        serde_json::json!("a job"),
        renamed,
    ] {
        assert!(
            serde_json::from_value::<Job>(snapshot.clone()).is_err(),
            "{snapshot} must not read as a job"
        );
    }
}
