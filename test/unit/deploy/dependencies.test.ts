import {describe, expect, it} from 'vitest'

import {configSchema} from '../../../src/config/schema.js'
import {DEPENDENCIES, dependenciesOf, dependencyProblems, STAGES, type StepDependency} from '../../../src/steps/stages.js'

// The cross-VM dependency table is data: these tests keep it runnable (no unknown step, no
// deadlock) before any deploy depends on it.
describe('DEPENDENCIES (steps that wait for steps on other VMs)', () => {
  it('names steps that exist on the roles given, and has no cycle', () => {
    expect(dependencyProblems()).toEqual([])
  })

  it('has GitLab’s database login wait for the databases, and GitLab start after that login', () => {
    const config = configSchema.parse({})
    expect(dependenciesOf('gitlab/database_login', config).map((d) => d.after)).toEqual([{role: 'database', step: 'database/postgres_databases'}])
    const gitlab = STAGES.find((s) => s.id === 'gitlab')!.steps.map((s) => s.id)
    expect(gitlab.indexOf('database_login')).toBeLessThan(gitlab.indexOf('gitlab_up'))
    expect(dependenciesOf('gitlab/database_login', configSchema.parse({services: {gitlab: {externalDatabase: false}}}))).toEqual([])
  })

  it('finds a step no stage has, a role that does not run the step, and a deadlock', () => {
    const bad: StepDependency[] = [
      {step: 'gitlab/nope', after: {role: 'database', step: 'database/postgres_databases'}, why: 'x'},
      {step: 'gitlab/gitlab_up', after: {role: 'k8s', step: 'database/postgres_databases'}, why: 'x'},
    ]
    expect(dependencyProblems(bad)).toEqual([
      'gitlab/nope: no stage has this step',
      'gitlab/gitlab_up waits for database/postgres_databases on k8s, which does not run it',
    ])
    const cycle: StepDependency[] = [
      ...DEPENDENCIES,
      // Not a cycle: gitlab_compose runs before gitlab-vm waits for database-vm.
      {step: 'database/redis_install', after: {role: 'gitlab', step: 'gitlab/gitlab_compose'}, why: 'x'},
    ]
    expect(dependencyProblems(cycle)).toEqual([])
    cycle.push({step: 'database/postgres_repo', after: {role: 'gitlab', step: 'gitlab/gitlab_up'}, why: 'x'})
    const problems = dependencyProblems(cycle)
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatch(/^cycle: /)
    for (const hop of ['database:database/postgres_databases -> gitlab:gitlab/database_login', 'gitlab:gitlab/gitlab_up -> database:database/postgres_repo']) expect(problems[0]).toContain(hop)
  })
})
