// Drives the npm mlflow client, unchanged, against a jobgate gateway:
// its README example first, then every call the client offers.
// MLFLOW_TRACKING_URI and MLFLOW_TRACKING_TOKEN say where and as whom.
'use strict'
const assert = require('assert')
const MLflow = require('mlflow')
const { ViewType, RunStatus } = require('mlflow/enum')

const client = new MLflow({
  endpoint: process.env.MLFLOW_TRACKING_URI,
  headers: { Authorization: 'Bearer ' + process.env.MLFLOW_TRACKING_TOKEN },
})
const { Experiments, Runs, Metrics, Artifacts } = client

// The client logs each POST body; keep our own output apart.
const say = (...a) => process.stderr.write('compat: ' + a.join(' ') + '\n')

// failure is the MLflow error a call answered: {status, data}.
async function failure(promise) {
  try {
    await promise
  } catch (e) {
    const m = /\{.*\}/s.exec(e.message)
    return JSON.parse(m[0])
  }
  throw new Error('the call succeeded; want an error')
}

;(async () => {
  // A run in the Default experiment ("0", the first listed) for the
  // README example to find.
  const { run } = await Runs.create({ experiment_id: '0', start_time: Date.now(), tags: [{ key: 'mlflow.runName', value: 'js-run' }] })
  const run_id = run.info.run_id
  for (let step = 1; step <= 3; step++) {
    await Runs.logMetric({ run_id, key: 'auc_score', value: 0.5 + step / 10, timestamp: Date.now(), step })
  }

  // The README example, as it is.
  {
    const { experiments } = await Experiments.list()
    const experiment = experiments[0]
    const { runs } = await Runs.search({ experiment_ids: [experiment.experiment_id], run_view_type: ViewType.ACTIVE_ONLY })
    const { info, data } = runs[0]
    const { run_id } = info
    const auc_history = await Metrics.getHistory({ run_id, metric_key: 'auc_score' })
    assert.strictEqual(auc_history.metrics.length, 3)
    assert.deepStrictEqual(auc_history.metrics.map((m) => m.step), [1, 2, 3])
    assert.ok(data.metrics.some((m) => m.key === 'auc_score'))
    say('README example: ok')
  }

  // Experiments.
  const { experiment_id } = await Experiments.create({ name: 'js-compat' })
  assert.strictEqual(experiment_id, 'js-compat')
  assert.strictEqual((await Experiments.get({ experiment_id })).experiment.name, 'js-compat')
  await Experiments.update({ experiment_id, new_name: 'js-compat' })
  // The client's setExperimentTag misses a '/' in its path
  // (experimentsset-experiment-tag): an endpoint no server has.
  const noEndpoint = await failure(Experiments.setExperimentTag({ experiment_id, key: 'k', value: 'v' }))
  assert.strictEqual(noEndpoint.status, 404)
  assert.strictEqual(noEndpoint.data.error_code, 'ENDPOINT_NOT_FOUND')
  await Experiments.delete({ experiment_id })
  assert.strictEqual((await Experiments.get({ experiment_id })).experiment.lifecycle_stage, 'deleted')
  assert.ok(!(await Experiments.list()).experiments.some((e) => e.experiment_id === experiment_id))
  assert.ok((await Experiments.list({ view_type: ViewType.DELETED_ONLY })).experiments.some((e) => e.experiment_id === experiment_id))
  await Experiments.restore({ experiment_id })
  assert.strictEqual((await Experiments.get({ experiment_id })).experiment.lifecycle_stage, 'active')
  const missing = await failure(Experiments.get({ experiment_id: 'no-such-experiment' }))
  assert.strictEqual(missing.status, 404)
  assert.strictEqual(missing.data.error_code, 'RESOURCE_DOES_NOT_EXIST')

  // Runs.
  const other = (await Runs.create({ experiment_id, start_time: Date.now() })).run.info.run_id
  await Runs.logParameter({ run_id: other, key: 'lr', value: '0.01' })
  await Runs.setTag({ run_id: other, key: 'x', value: 'y' })
  await Runs.logBatch({ run_id: other, metrics: [{ key: 'acc', value: 0.93, timestamp: Date.now(), step: 1 }], params: [{ key: 'opt', value: 'adam' }], tags: [{ key: 'gone', value: '1' }] })
  await Runs.deleteTag({ run_id: other, key: 'gone' })
  await Runs.update({ run_id: other, status: RunStatus.FINISHED, end_time: Date.now() })
  const got = (await Runs.get({ run_id: other })).run
  assert.strictEqual(got.info.status, 'FINISHED')
  assert.ok(!got.data.tags.some((t) => t.key === 'gone'))
  const filter = "metrics.acc > 0.9 and params.lr = '0.01' and tags.x = 'y' and attributes.status = 'FINISHED'"
  let found = await Runs.search({ experiment_ids: [experiment_id], filter, order_by: ['metrics.acc DESC'], max_results: 10 })
  assert.deepStrictEqual(found.runs.map((r) => r.info.run_id), [other])
  const bad = await failure(Runs.search({ experiment_ids: [experiment_id], filter: 'metrics.acc > 1 OR params.lr = 1' }))
  assert.strictEqual(bad.data.error_code, 'INVALID_PARAMETER_VALUE')
  await Runs.delete({ run_id: other })
  found = await Runs.search({ experiment_ids: [experiment_id] })
  assert.strictEqual((found.runs || []).length, 0)
  found = await Runs.search({ experiment_ids: [experiment_id], run_view_type: ViewType.DELETED_ONLY })
  assert.deepStrictEqual(found.runs.map((r) => r.info.run_id), [other])
  await Runs.restore({ run_id: other })
  assert.strictEqual((await Runs.get({ run_id: other })).run.info.lifecycle_stage, 'active')

  // Metrics and artifacts.
  const acc = await Metrics.getHistory({ run_id: other, metric_key: 'acc' })
  assert.deepStrictEqual(acc.metrics.map((m) => m.value), [0.93])
  const listing = await Artifacts.list({ run_id: other })
  assert.ok(Array.isArray(listing.files))
  say('every call: ok')

  // The model registry. The npm client 2.0.7 has no registry methods; these
  // go through its own transport (MLflowBase.req), as a client would.
  const { MLflowBase } = require('mlflow/lib/mlflow')
  const part = (path) => {
    const b = new MLflowBase({ endpoint: process.env.MLFLOW_TRACKING_URI, headers: { Authorization: 'Bearer ' + process.env.MLFLOW_TRACKING_TOKEN } })
    b.path = path
    return b
  }
  const models = part('/registered-models')
  const versions = part('/model-versions')
  const rm = (await models.req('post', '/create', { name: 'js-model', description: 'from js' })).registered_model
  assert.strictEqual(rm.name, 'js-model')
  assert.strictEqual((await models.req('get', '/get', { name: 'js-model' })).registered_model.description, 'from js')
  // Upper case: fetch sends a lower-case 'patch' as it is, which no server takes.
  await models.req('PATCH', '/update', { name: 'js-model', description: 'updated' })
  const searched = await models.req('get', '/search', { filter: "name LIKE 'js-%'", max_results: 10 })
  assert.deepStrictEqual(searched.registered_models.map((m) => [m.name, m.description]), [['js-model', 'updated']])
  assert.deepStrictEqual((await models.req('post', '/get-latest-versions', { name: 'js-model' })).model_versions, [])
  const exists = await failure(models.req('post', '/create', { name: 'js-model' }))
  assert.strictEqual(exists.data.error_code, 'RESOURCE_ALREADY_EXISTS')
  const unknown = await failure(models.req('get', '/get', { name: 'no-such-model' }))
  assert.strictEqual(unknown.status, 404)
  assert.strictEqual(unknown.data.error_code, 'RESOURCE_DOES_NOT_EXIST')
  // A tracked run has no artifacts to register.
  const noFiles = await failure(versions.req('post', '/create', { name: 'js-model', source: `runs:/${other}/model`, run_id: other }))
  assert.strictEqual(noFiles.data.error_code, 'INVALID_PARAMETER_VALUE')
  assert.deepStrictEqual((await versions.req('get', '/search', { filter: "name='js-model'" })).model_versions, [])
  const noVersion = await failure(versions.req('get', '/get', { name: 'js-model', version: '1' }))
  assert.strictEqual(noVersion.data.error_code, 'RESOURCE_DOES_NOT_EXIST')
  const noAlias = await failure(models.req('get', '/alias', { name: 'js-model', alias: 'champion' }))
  assert.strictEqual(noAlias.data.error_code, 'RESOURCE_DOES_NOT_EXIST')
  say('model registry: ok')
  console.log('MLFLOW-JS-COMPAT-OK')
})().catch((e) => {
  say('FAILED:', e.stack || e)
  process.exit(1)
})
