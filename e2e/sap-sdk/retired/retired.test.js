// SAP's own JavaScript client against a retired route with SAP stopped: the proxy and the order
// service alone answer every step of an order's life as the client drives it: the CSRF fetch
// (HEAD .../A_SalesOrder/) and the logon, a deep-insert create, reads by key and lists with
// $select (navigation selection too), $expand of to_Item, $filter as the SDK builds it (eq, and,
// or, startswith, substringof, a date, a decimal), $top and $count, a quantity change on a line
// (PATCH under the order's ETag) after which the order is still priced, a line rejection with a
// reason, an unknown reason refused, two line changes in one $batch changeset applied together and
// a changeset with a refused change applying nothing, refused creates in SAP's terms that store nothing (no sold-to
// party, an unknown material, an unknown sold-to party), and a wrong password.
//
// Run by the proxy's integration test
// `retired_face::sap_s_javascript_client_passes_an_order_s_whole_life_against_a_retired_route_with_sap_frozen`
// with SAP_SDK_TESTS=retired/ (not part of the default test/ run: it needs a retired route).
// The steps share one order and run in file order (node:test runs a file's tests in sequence).
//
// Environment: SAP_URL (the proxy), SAP_USER/SAP_PASSWORD (a user of PROXY_USERS_FILE),
// optional SAP_CLIENT.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const moment = require('moment');
const { BigNumber } = require('bignumber.js');
const { and, or, filterFunctions } = require('@sap-cloud-sdk/odata-v2');
const { salesOrderService } = require('@sap/cloud-sdk-vdm-sales-order-service');

const { salesOrderApi, salesOrderItemApi } = salesOrderService();
const SO = salesOrderApi.schema;
const ITEM = salesOrderItemApi.schema;
const { startsWith, substringOf } = filterFunctions();

const url = process.env.SAP_URL;
if (!url || !process.env.SAP_USER) {
  throw new Error('SAP_URL and SAP_USER/SAP_PASSWORD must name the proxy and a user of its SAP face');
}
const destination = {
  url,
  username: process.env.SAP_USER,
  password: process.env.SAP_PASSWORD || '',
};
if (process.env.SAP_CLIENT) {
  destination.sapClient = process.env.SAP_CLIENT;
}
const po = `SDK-RET-${Date.now()}-${process.pid}`;

function newOrder(soldToParty, reference, items) {
  return salesOrderApi
    .entityBuilder()
    .salesOrderType('OR')
    .salesOrganization('1010')
    .distributionChannel('10')
    .organizationDivision('00')
    .soldToParty(soldToParty)
    .purchaseOrderByCustomer(reference)
    .customerPurchaseOrderDate(moment.utc('2026-11-24', 'YYYY-MM-DD'))
    .toItem(
      items.map(([material, quantity]) =>
        salesOrderItemApi
          .entityBuilder()
          .material(material)
          .requestedQuantity(new BigNumber(quantity))
          .requestedQuantityUnit('PC')
          .build()
      )
    )
    .build();
}

/** Every message along an ErrorWithCause chain, outermost first. */
function messages(err) {
  const out = [];
  for (let e = err; e; e = e.cause) out.push(String(e.message));
  return out.join('\n');
}

/** The HTTP response at the root of an ErrorWithCause chain. */
function rootResponse(err) {
  for (let e = err; e; e = e.cause) if (e.response) return e.response;
  return undefined;
}

/** Asserts an S/4-shaped OData V2 error: status, `error.code`, message text, JSON. */
function assertSapError(err, status, code, text) {
  const response = rootResponse(err);
  assert.ok(response, `an HTTP answer: ${messages(err)}`);
  assert.equal(response.status, status, messages(err));
  assert.match(String(response.headers['content-type']), /application\/json/);
  const error = response.data?.error;
  assert.equal(error?.code, code, JSON.stringify(response.data));
  assert.equal(error?.message?.lang, 'en');
  assert.match(error?.message?.value, text);
  // the SDK puts SAP's message into its own error text
  assert.match(messages(err), text);
  // no REST (order service) vocabulary leaks into SAP's face
  assert.doesNotMatch(JSON.stringify(response.data), /customer_id|sku|problem\+json|"detail"/);
}

/** How many orders the proxy serves with this reference (`A_SalesOrder/$count`). */
function countByReference(reference) {
  return salesOrderApi
    .requestBuilder()
    .getAll()
    .filter(SO.PURCHASE_ORDER_BY_CUSTOMER.equals(reference))
    .count()
    .execute(destination);
}

function item(no) {
  return salesOrderItemApi.requestBuilder().getByKey(created.salesOrder, no).execute(destination);
}

/** The order with its lines, every field. */
function whole() {
  return salesOrderApi
    .requestBuilder()
    .getByKey(created.salesOrder)
    .select(SO.ALL_FIELDS, SO.TO_ITEM.select(ITEM.ALL_FIELDS))
    .execute(destination);
}

/** Priced, and its total equal to the sum of its lines (as S/4's pricing keeps it). */
function assertPriced(order) {
  assert.ok(order.toItem.length > 0, 'lines read with the order');
  for (const i of order.toItem) {
    assert.ok(i.netAmount.isGreaterThan(0), `line ${i.salesOrderItem} priced: ${i.netAmount}`);
  }
  const lines = order.toItem.reduce((sum, i) => sum.plus(i.netAmount), new BigNumber(0));
  assert.ok(order.totalNetAmount.isGreaterThan(0), 'the order is priced');
  assert.ok(order.totalNetAmount.isEqualTo(lines), `total ${order.totalNetAmount} = lines ${lines}`);
}

let created;

test('with SAP stopped, the client fetches a token, creates an order and reads it by key', async () => {
  created = await salesOrderApi
    .requestBuilder()
    .create(newOrder('17100001', po, [['TG11', 2], ['TG12', 5]]))
    .execute(destination);
  assert.match(created.salesOrder, /^\d+$/);
  assert.equal(created.purchaseOrderByCustomer, po);
  assert.deepEqual(created.toItem.map((i) => i.salesOrderItem), ['10', '20']);
  assert.ok(created.versionIdentifier, 'the create answered an ETag');
  const read = await whole();
  assert.equal(read.salesOrder, created.salesOrder);
  assert.equal(read.soldToParty, '17100001');
  assert.equal(read.purchaseOrderByCustomer, po);
  assert.equal(read.salesOrderType, 'OR');
  assert.equal(read.customerPurchaseOrderDate.valueOf(), Date.UTC(2026, 10, 24));
  assert.ok(moment.isMoment(read.creationDate), 'dates arrive as /Date(ms)/ and parse');
  assert.equal(read.overallSdDocumentRejectionSts, 'A', 'nothing rejected yet');
  assert.deepEqual(read.toItem.map((i) => i.material), ['TG11', 'TG12']);
  assert.ok(read.toItem[0].requestedQuantity.isEqualTo(2));
  assert.ok(read.toItem[1].requestedQuantity.isEqualTo(5));
  assert.equal(read.toItem[1].requestedQuantityUnit, 'PC');
  assertPriced(read);
  assert.ok(read.totalNetAmount.isEqualTo(created.totalNetAmount));
});

test('a list with $select of header and item fields, $expand of to_Item and $top sends only those', async () => {
  assert.ok(created, 'create ran first');
  const list = await salesOrderApi
    .requestBuilder()
    .getAll()
    .select(
      SO.SALES_ORDER,
      SO.PURCHASE_ORDER_BY_CUSTOMER,
      SO.TOTAL_NET_AMOUNT,
      SO.TO_ITEM.select(ITEM.SALES_ORDER_ITEM, ITEM.MATERIAL, ITEM.REQUESTED_QUANTITY)
    )
    .filter(SO.PURCHASE_ORDER_BY_CUSTOMER.equals(po))
    .top(5)
    .execute(destination);
  assert.equal(list.length, 1);
  const [order] = list;
  assert.equal(order.salesOrder, created.salesOrder);
  assert.equal(order.purchaseOrderByCustomer, po);
  assert.ok(order.totalNetAmount.isEqualTo(created.totalNetAmount));
  assert.equal(order.soldToParty, undefined, 'unselected header fields are not sent');
  assert.deepEqual(order.toItem.map((i) => i.salesOrderItem), ['10', '20']);
  assert.deepEqual(order.toItem.map((i) => i.material), ['TG11', 'TG12']);
  assert.ok(order.toItem[1].requestedQuantity.isEqualTo(5));
  assert.equal(order.toItem[0].netAmount, undefined, 'unselected item fields are not sent');
  assert.equal(order.toItem[0].requestedQuantityUnit, undefined);
});

test('a list expanding every item field ($select=*,to_Item/*) gives the lines in full', async () => {
  assert.ok(created, 'create ran first');
  const list = await salesOrderApi
    .requestBuilder()
    .getAll()
    .select(SO.ALL_FIELDS, SO.TO_ITEM.select(ITEM.ALL_FIELDS))
    .filter(SO.PURCHASE_ORDER_BY_CUSTOMER.equals(po))
    .execute(destination);
  assert.equal(list.length, 1);
  assert.equal(list[0].soldToParty, '17100001');
  assert.equal(list[0].toItem.length, 2);
  assert.equal(list[0].toItem[0].salesOrder, created.salesOrder);
  assert.equal(list[0].toItem[0].requestedQuantityUnit, 'PC');
  assertPriced(list[0]);
});

test('filters the SDK builds (and, or, startswith, substringof, a date, a decimal) find the order', async () => {
  assert.ok(created, 'create ran first');
  const numbers = async (filter) =>
    (
      await salesOrderApi
        .requestBuilder()
        .getAll()
        .select(SO.SALES_ORDER)
        .filter(filter)
        .execute(destination)
    ).map((o) => o.salesOrder);
  const total = created.totalNetAmount;
  assert.deepEqual(
    await numbers(
      and(
        SO.PURCHASE_ORDER_BY_CUSTOMER.equals(po),
        or(SO.SOLD_TO_PARTY.equals('17100001'), SO.SOLD_TO_PARTY.equals('nobody')),
        SO.TOTAL_NET_AMOUNT.greaterThan(new BigNumber('0.5')),
        SO.CREATION_DATE.greaterOrEqual(moment.utc('2000-01-01', 'YYYY-MM-DD'))
      )
    ),
    [created.salesOrder]
  );
  assert.deepEqual(
    await numbers(and(startsWith(SO.PURCHASE_ORDER_BY_CUSTOMER, po).equals(true), SO.TOTAL_NET_AMOUNT.equals(total))),
    [created.salesOrder],
    'startswith and a decimal equal to the total'
  );
  assert.deepEqual(
    await numbers(and(substringOf(po.slice(4), SO.PURCHASE_ORDER_BY_CUSTOMER).equals(true), SO.SALES_ORDER.equals(created.salesOrder))),
    [created.salesOrder],
    'substringof'
  );
  // conditions that do not hold leave the order out
  assert.deepEqual(
    await numbers(and(SO.PURCHASE_ORDER_BY_CUSTOMER.equals(po), SO.TOTAL_NET_AMOUNT.greaterThan(total))),
    []
  );
  assert.deepEqual(
    await numbers(
      and(SO.PURCHASE_ORDER_BY_CUSTOMER.equals(po), SO.CREATION_DATE.lessThan(moment.utc('2000-01-01', 'YYYY-MM-DD')))
    ),
    []
  );
  assert.deepEqual(
    await numbers(and(SO.PURCHASE_ORDER_BY_CUSTOMER.equals(po), SO.SOLD_TO_PARTY.notEquals('17100001'))),
    []
  );
});

test('$count counts with a filter, and $top limits a list', async () => {
  assert.ok(created, 'create ran first');
  assert.equal(await countByReference(po), 1);
  assert.equal(await countByReference(`${po}-NONE`), 0);
  const all = await salesOrderApi.requestBuilder().getAll().count().execute(destination);
  assert.ok(all >= 1, `count of every order: ${all}`);
  const page = await salesOrderApi
    .requestBuilder()
    .getAll()
    .select(SO.SALES_ORDER)
    .filter(startsWith(SO.PURCHASE_ORDER_BY_CUSTOMER, 'SDK-RET-').equals(true))
    .top(1)
    .execute(destination);
  assert.equal(page.length, 1);
});

// S/4 declares no ETag on A_SalesOrderItem (the order's LastChangeDateTime is the one concurrency
// token, see docs/proxy.md): a line read carries none, and a line change with `If-Match` is
// checked against the order's ETag. The client sets the order's ETag on the line it changes.
test('a line\'s quantity is changed under the order\'s ETag and the order stays priced, total = lines', async () => {
  assert.ok(created, 'create ran first');
  const before = await whole();
  assert.ok(before.versionIdentifier, 'the order read carries an ETag');
  const line = await item('10');
  assert.ok(line.requestedQuantity.isEqualTo(2));
  line.requestedQuantity = new BigNumber(7);
  line.setVersionIdentifier(before.versionIdentifier);
  await salesOrderItemApi.requestBuilder().update(line).execute(destination);
  const after = await item('10');
  assert.ok(after.requestedQuantity.isEqualTo(7), `quantity ${after.requestedQuantity}`);
  const order = await whole();
  assert.notEqual(order.versionIdentifier, before.versionIdentifier, 'a line change gives the order a new ETag');
  assertPriced(order);
  const [was, now] = [before.toItem[0], order.toItem[0]];
  assert.ok(now.netAmount.isEqualTo(was.netAmount.dividedBy(2).times(7)), `repriced: ${was.netAmount} -> ${now.netAmount}`);
  assert.ok(order.toItem[1].netAmount.isEqualTo(before.toItem[1].netAmount), 'the other line kept its price');
  assert.ok(order.totalNetAmount.isGreaterThan(before.totalNetAmount));
  // a change still carrying the old ETag is refused with 412 and changes nothing
  after.requestedQuantity = new BigNumber(9);
  after.setVersionIdentifier(before.versionIdentifier);
  await assert.rejects(salesOrderItemApi.requestBuilder().update(after).execute(destination), (err) => {
    assertSapError(err, 412, '/IWBEP/CM_MGW_RT/098', /changed by another user/);
    return true;
  });
  assert.ok((await item('10')).requestedQuantity.isEqualTo(7));
  assert.equal((await whole()).versionIdentifier, order.versionIdentifier);
});

test('a line is rejected with a reason and the order shows it partly rejected', async () => {
  assert.ok(created, 'create ran first');
  const line = await item('20');
  assert.equal(line.salesDocumentRjcnReason, '');
  line.salesDocumentRjcnReason = '02';
  await salesOrderItemApi.requestBuilder().update(line).execute(destination);
  const rejected = await item('20');
  assert.equal(rejected.salesDocumentRjcnReason, '02');
  assert.equal(rejected.sdProcessStatus, 'C', 'a rejected line is completed (S/4)');
  const order = await whole();
  assert.equal(order.overallSdDocumentRejectionSts, 'B', 'partly rejected');
  assert.notEqual(order.overallSdProcessStatus, 'C', 'one line is still open');
  assert.equal(order.toItem[0].salesDocumentRjcnReason, '');
  assert.equal(order.toItem[1].salesDocumentRjcnReason, '02');
  // the rejection status is filterable as SAP's own property
  const partly = await salesOrderApi
    .requestBuilder()
    .getAll()
    .select(SO.SALES_ORDER)
    .filter(and(SO.PURCHASE_ORDER_BY_CUSTOMER.equals(po), SO.OVERALL_SD_DOCUMENT_REJECTION_STS.equals('B')))
    .execute(destination);
  assert.deepEqual(partly.map((o) => o.salesOrder), [created.salesOrder]);
});

test('an unknown rejection reason is refused in SAP\'s terms and changes nothing', async () => {
  assert.ok(created, 'create ran first');
  const line = await item('10');
  line.salesDocumentRjcnReason = 'Q9';
  const tag = (await whole()).versionIdentifier;
  await assert.rejects(salesOrderItemApi.requestBuilder().update(line).execute(destination), (err) => {
    assertSapError(err, 400, 'V1/206', /Q9/);
    return true;
  });
  assert.equal((await item('10')).salesDocumentRjcnReason, '');
  const order = await whole();
  assert.equal(order.versionIdentifier, tag, 'a refused change keeps the ETag');
  assert.equal(order.overallSdDocumentRejectionSts, 'B');
});

// A changeset is saved whole or not at all (S/4 saves a changeset's changes in one LUW): the
// client's $batch with two line changes in one changeset, then one whose second change S/4
// refuses, after which the first is not applied either.
test('two line changes in one changeset of the client\'s $batch are applied together; a changeset with a refused change applies none', async () => {
  assert.ok(created, 'create ran first');
  const { batch, changeset } = salesOrderService();
  const update = (line) => salesOrderItemApi.requestBuilder().update(line);
  const [l10, l20] = [await item('10'), await item('20')];
  l10.requestedQuantity = new BigNumber(3);
  // the rejected line's quantity changes too, as S/4 takes it; the line stays rejected
  l20.requestedQuantity = new BigNumber(4);
  const [applied] = await batch(changeset(update(l10), update(l20))).execute(destination);
  assert.ok(applied.isWriteResponses(), JSON.stringify(applied));
  assert.deepEqual(applied.responses.map((r) => r.httpCode), [204, 204]);
  const order = await whole();
  assert.ok(order.toItem[0].requestedQuantity.isEqualTo(3), `line 10: ${order.toItem[0].requestedQuantity}`);
  assert.ok(order.toItem[1].requestedQuantity.isEqualTo(4), `line 20: ${order.toItem[1].requestedQuantity}`);
  assert.equal(order.toItem[1].salesDocumentRjcnReason, '02', 'still rejected');
  assert.ok(order.totalNetAmount.isEqualTo(order.toItem[0].netAmount), 'the rejected line stays out of the total');

  const [b10, b20] = [await item('10'), await item('20')];
  b10.requestedQuantity = new BigNumber(8);
  b20.salesDocumentRjcnReason = 'Q9';
  const [refused] = await batch(changeset(update(b10), update(b20))).execute(destination);
  assert.ok(refused.isError(), JSON.stringify(refused));
  assert.equal(refused.httpCode, 400);
  assert.equal(refused.body?.error?.code, 'V1/206', JSON.stringify(refused.body));
  const still = await whole();
  assert.ok(still.toItem[0].requestedQuantity.isEqualTo(3), 'the first change of the refused changeset was not applied');
  assert.equal(still.versionIdentifier, order.versionIdentifier, 'a refused changeset keeps the ETag');
});

test('a create without sold-to party is refused as S/4 refuses it and stores nothing', async () => {
  const badPo = `${po}-BAD`;
  const bad = salesOrderApi
    .entityBuilder()
    .salesOrderType('OR')
    .salesOrganization('1010')
    .distributionChannel('10')
    .organizationDivision('00')
    .soldToParty('')
    .purchaseOrderByCustomer(badPo)
    .build();
  assert.equal(await countByReference(badPo), 0);
  await assert.rejects(salesOrderApi.requestBuilder().create(bad).execute(destination), (err) => {
    assertSapError(err, 400, 'V1/320', /Enter a sold-to party/);
    return true;
  });
  assert.equal(await countByReference(badPo), 0);
});

test('a create with an unknown material is refused naming the material and stores nothing', async () => {
  const badPo = `${po}-MAT`;
  await assert.rejects(
    salesOrderApi
      .requestBuilder()
      .create(newOrder('17100001', badPo, [['TG11', 1], ['NO-SUCH-MATERIAL', 1]]))
      .execute(destination),
    (err) => {
      assertSapError(err, 400, 'V1/392', /Material NO-SUCH-MATERIAL is not defined/);
      return true;
    }
  );
  assert.equal(await countByReference(badPo), 0);
});

test('a create for a sold-to party outside the master data is refused as S/4 refuses it', async () => {
  const badPo = `${po}-CUST`;
  await assert.rejects(
    salesOrderApi.requestBuilder().create(newOrder('17199999', badPo, [['TG11', 1]])).execute(destination),
    (err) => {
      assertSapError(err, 400, 'V1/317', /Sold-to party 17199999 is not defined for sales area 1010 10 00/);
      return true;
    }
  );
  assert.equal(await countByReference(badPo), 0);
});

test('a wrong password is refused with 401 and creates nothing', async () => {
  const wrong = { ...destination, password: `${destination.password}-wrong` };
  const badPo = `${po}-401`;
  await assert.rejects(
    salesOrderApi.requestBuilder().create(newOrder('17100001', badPo, [['TG11', 1]])).execute(wrong),
    (err) => rootResponse(err)?.status === 401
  );
  assert.equal(await countByReference(badPo), 0);
});
