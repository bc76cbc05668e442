// Sends identify, group, track and page calls with @segment/analytics-node to a Telltale
// collector, then flushes. Usage: node send_events.mjs <host> <writeKey> <userId>
// <accountId> <isoTimestamp>. Prints one JSON line with what it sent (or failed to).
import { Analytics } from '@segment/analytics-node'

const [host, writeKey, userId, accountId, timestamp] = process.argv.slice(2)
const analytics = new Analytics({ writeKey, host, flushInterval: 200, maxRetries: 3 })
const failures = []
analytics.on('error', (err) => failures.push(String(err && (err.code || err.message || err))))

const when = new Date(timestamp)
analytics.identify({ userId, traits: { email: `${userId}@example.test`, role: 'admin' }, timestamp: when })
analytics.group({ userId, groupId: accountId, traits: { name: 'Node Co', seats: 12, plan: 'pro' }, timestamp: when })
analytics.track({ userId, event: 'Report Published', properties: { report: 'weekly' }, timestamp: when })
analytics.page({ userId, name: 'Pricing', properties: { path: '/pricing' }, timestamp: when })

await analytics.closeAndFlush({ timeout: 20000 })
console.log(JSON.stringify({ sent: 4, failures }))
process.exit(failures.length ? 1 : 0)
