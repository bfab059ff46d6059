// Drives API_SALES_ORDER_SRV at SAP_URL with SAP's own generated JavaScript client
// (@sap/cloud-sdk-vdm-sales-order-service on @sap-cloud-sdk/odata-v2 2.x), unchanged.
//
// Environment: SAP_URL (base URL, without the service path), optional SAP_USER/SAP_PASSWORD
// (basic auth) and SAP_CLIENT (sent as the sap-client header, as SAP's destinations do).
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const moment = require('moment');
const { BigNumber } = require('bignumber.js');
const { salesOrderService } = require('@sap/cloud-sdk-vdm-sales-order-service');

const { salesOrderApi, salesOrderItemApi } = salesOrderService();
const SO = salesOrderApi.schema;
const ITEM = salesOrderItemApi.schema;

const url = process.env.SAP_URL;
if (!url) {
  throw new Error('SAP_URL must point at the system under test (e.g. http://127.0.0.1:8082)');
}
const destination = { url };
if (process.env.SAP_USER) {
  destination.username = process.env.SAP_USER;
  destination.password = process.env.SAP_PASSWORD || '';
}
if (process.env.SAP_CLIENT) {
  destination.sapClient = process.env.SAP_CLIENT;
}

// A customer reference unique to this run, so the filtered list finds only our orders.
const po = `SDK-${Date.now()}-${process.pid}`;

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

let created;

test('a deep-insert create with items returns the order with a number, items and prices', async () => {
  created = await salesOrderApi
    .requestBuilder()
    .create(newOrder('17100001', po, [['TG11', 2], ['TG12', 5]]))
    .execute(destination);
  assert.match(created.salesOrder, /^\d+$/);
  assert.equal(created.soldToParty, '17100001');
  assert.equal(created.purchaseOrderByCustomer, po);
  assert.equal(created.customerPurchaseOrderDate.valueOf(), Date.UTC(2026, 10, 24));
  assert.equal(created.toItem.length, 2);
  assert.deepEqual(created.toItem.map((i) => i.salesOrderItem), ['10', '20']);
  assert.deepEqual(created.toItem.map((i) => i.material), ['TG11', 'TG12']);
  assert.ok(created.toItem[0].requestedQuantity.isEqualTo(2));
  assert.ok(created.totalNetAmount.isGreaterThan(0), 'priced from master data');
  assert.ok(created.versionIdentifier, 'the ETag became the version identifier');
});

test('reading the order by key with all fields and items gives back what was created', async () => {
  assert.ok(created, 'create ran first');
  const read = await salesOrderApi
    .requestBuilder()
    .getByKey(created.salesOrder)
    .select(SO.ALL_FIELDS, SO.TO_ITEM.select(ITEM.ALL_FIELDS))
    .execute(destination);
  assert.equal(read.salesOrder, created.salesOrder);
  assert.equal(read.soldToParty, '17100001');
  assert.equal(read.purchaseOrderByCustomer, po);
  assert.equal(read.salesOrderType, 'OR');
  assert.ok(read.totalNetAmount.isEqualTo(created.totalNetAmount));
  assert.ok(moment.isMoment(read.creationDate), 'dates arrive as /Date(ms)/ and parse');
  assert.equal(read.toItem.length, 2);
  assert.equal(read.toItem[1].material, 'TG12');
  assert.ok(read.toItem[1].requestedQuantity.isEqualTo(5));
  assert.equal(read.toItem[1].requestedQuantityUnit, 'PC');
  assert.ok(read.toItem[1].netAmount.isGreaterThan(0));
});

test('a filtered list with a selection returns only the selected fields of our order', async () => {
  assert.ok(created, 'create ran first');
  const list = await salesOrderApi
    .requestBuilder()
    .getAll()
    .select(
      SO.SALES_ORDER,
      SO.PURCHASE_ORDER_BY_CUSTOMER,
      SO.TO_ITEM.select(ITEM.SALES_ORDER_ITEM, ITEM.MATERIAL, ITEM.REQUESTED_QUANTITY)
    )
    .filter(SO.PURCHASE_ORDER_BY_CUSTOMER.equals(po))
    .top(5)
    .execute(destination);
  assert.equal(list.length, 1);
  const [order] = list;
  assert.equal(order.salesOrder, created.salesOrder);
  assert.equal(order.purchaseOrderByCustomer, po);
  assert.equal(order.soldToParty, undefined, 'unselected fields are not sent');
  assert.equal(order.toItem.length, 2);
  assert.equal(order.toItem[0].material, 'TG11');
  assert.equal(order.toItem[0].netAmount, undefined, 'unselected item fields are not sent');
});

test('a filter on several conditions with and, or and a function finds the order', async () => {
  assert.ok(created, 'create ran first');
  const { and, or } = require('@sap-cloud-sdk/odata-v2');
  const list = await salesOrderApi
    .requestBuilder()
    .getAll()
    .filter(
      and(
        SO.PURCHASE_ORDER_BY_CUSTOMER.equals(po),
        or(SO.SOLD_TO_PARTY.equals('17100001'), SO.SOLD_TO_PARTY.equals('nobody')),
        SO.TOTAL_NET_AMOUNT.greaterThan(new BigNumber('0.5')),
        SO.CREATION_DATE.greaterOrEqual(moment.utc('2000-01-01', 'YYYY-MM-DD'))
      )
    )
    .execute(destination);
  assert.deepEqual(
    list.map((o) => o.salesOrder),
    [created.salesOrder]
  );
});

test('counting with a filter counts our single order', async () => {
  assert.ok(created, 'create ran first');
  const n = await salesOrderApi
    .requestBuilder()
    .getAll()
    .filter(SO.PURCHASE_ORDER_BY_CUSTOMER.equals(po))
    .count()
    .execute(destination);
  assert.equal(n, 1);
});

test('an update with the version identifier changes the order and a stale one is refused', async () => {
  assert.ok(created, 'create ran first');
  const before = await salesOrderApi.requestBuilder().getByKey(created.salesOrder).execute(destination);
  const oldTag = before.versionIdentifier;
  before.customerPurchaseOrderType = 'EDI';
  await salesOrderApi.requestBuilder().update(before).execute(destination);
  const after = await salesOrderApi.requestBuilder().getByKey(created.salesOrder).execute(destination);
  assert.equal(after.customerPurchaseOrderType, 'EDI');
  assert.notEqual(after.versionIdentifier, oldTag);
  // a copy still carrying the old ETag: SAP answers 412 and keeps the first change
  after.customerPurchaseOrderType = 'FAX';
  after.setVersionIdentifier(oldTag);
  await assert.rejects(
    salesOrderApi.requestBuilder().update(after).execute(destination),
    (err) => rootResponse(err)?.status === 412
  );
  const unchanged = await salesOrderApi.requestBuilder().getByKey(created.salesOrder).execute(destination);
  assert.equal(unchanged.customerPurchaseOrderType, 'EDI');
});

test('a create without sold-to party is rejected with SAP\'s message and stores nothing', async () => {
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
  await assert.rejects(salesOrderApi.requestBuilder().create(bad).execute(destination), (err) => {
    const text = messages(err);
    assert.match(text, /Enter a sold-to party/);
    const response = rootResponse(err);
    assert.equal(response?.status, 400);
    assert.equal(response?.data?.error?.code, 'V1/320');
    return true;
  });
  const n = await salesOrderApi
    .requestBuilder()
    .getAll()
    .filter(SO.PURCHASE_ORDER_BY_CUSTOMER.equals(badPo))
    .count()
    .execute(destination);
  assert.equal(n, 0);
});

test('a create with an unknown material is rejected with the material named in the message', async () => {
  const badPo = `${po}-MAT`;
  await assert.rejects(
    salesOrderApi
      .requestBuilder()
      .create(newOrder('17100001', badPo, [['NO-SUCH-MATERIAL', 1]]))
      .execute(destination),
    (err) => {
      assert.match(messages(err), /Material NO-SUCH-MATERIAL is not defined/);
      return true;
    }
  );
  const n = await salesOrderApi
    .requestBuilder()
    .getAll()
    .filter(SO.PURCHASE_ORDER_BY_CUSTOMER.equals(badPo))
    .count()
    .execute(destination);
  assert.equal(n, 0);
});

// An order number from the order type's external range (8000000000-9999999999 by default), as
// sap-sync creates orders under the order service's own number. Unique per run.
const externalNumber = String(8000000000 + (Date.now() % 1000000000) + 1000000000 * (process.pid % 2));

test('a create naming an external SalesOrder keeps the number, drops read-only fields and reads back by it', async () => {
  const reference = `${po}-EXT`;
  const order = newOrder('17100001', reference, [['TG11', 3]]);
  order.salesOrder = externalNumber;
  // S/4 declares these sap:creatable="false": it does not take them from a create
  order.externalDocumentId = 'MUST-NOT-STICK';
  order.senderBusinessSystemName = 'SHOP';
  const made = await salesOrderApi.requestBuilder().create(order).execute(destination);
  assert.equal(made.salesOrder, externalNumber);
  const read = await salesOrderApi
    .requestBuilder()
    .getByKey(externalNumber)
    .select(SO.ALL_FIELDS, SO.TO_ITEM.select(ITEM.ALL_FIELDS))
    .execute(destination);
  assert.equal(read.salesOrder, externalNumber);
  assert.equal(read.purchaseOrderByCustomer, reference);
  assert.equal(read.toItem.length, 1);
  assert.equal(read.toItem[0].salesOrder, externalNumber);
  assert.ok(read.toItem[0].requestedQuantity.isEqualTo(3));
  assert.ok(!read.externalDocumentId, 'ExternalDocumentID is not creatable on S/4');
  assert.ok(!read.senderBusinessSystemName, 'SenderBusinessSystemName is not creatable on S/4');
  const byReadOnlyField = await salesOrderApi
    .requestBuilder()
    .getAll()
    .filter(SO.EXTERNAL_DOCUMENT_ID.equals('MUST-NOT-STICK'))
    .execute(destination);
  assert.equal(byReadOnlyField.length, 0, 'nothing is findable by a field S/4 dropped');
});

test('a second create of the same external number is refused and stores nothing', async () => {
  const reference = `${po}-EXT-AGAIN`;
  const again = newOrder('17100001', reference, [['TG11', 1]]);
  again.salesOrder = externalNumber;
  await assert.rejects(salesOrderApi.requestBuilder().create(again).execute(destination), (err) => {
    assert.equal(rootResponse(err)?.status, 400, messages(err));
    return true;
  });
  const n = await salesOrderApi
    .requestBuilder()
    .getAll()
    .filter(SO.PURCHASE_ORDER_BY_CUSTOMER.equals(reference))
    .count()
    .execute(destination);
  assert.equal(n, 0);
});
